"""Processes: the ``hub`` command, ``hub run``'s supervisor, the rq jobs, the scheduler and
the mail poller."""
