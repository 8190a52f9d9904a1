"""Provider modules: bytes in, neutral events out (and, for senders, messages out).

Nothing here touches the database or the queue; see ``connectors.base`` for the protocol.
"""
