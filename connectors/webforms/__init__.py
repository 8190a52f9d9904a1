"""Web form providers: a site's own form (``generic``), Tilda, Contact Form 7.

They share body decoding, the shared secret and the honeypot (``common``); each module adds
only what its provider sends differently.
"""
