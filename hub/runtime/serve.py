"""Long-running processes: uvicorn for the web, the rq worker, the mail poller, and
``hub run``, which supervises all of them in one foreground process tree."""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("hub.serve")
INSTANCE = Path("instance")


def bind_address() -> str:
    return f"{os.environ.get('HUB_HOST', '127.0.0.1')}:{os.environ.get('HUB_PORT', '8000')}"


def log_level() -> str:
    return os.environ.get("HUB_LOG_LEVEL", "INFO").upper()


def share_secret_key(env) -> None:
    """Every web worker must sign sessions with one key: without ``HUB_SECRET_KEY`` the
    process tree gets a random one, and console sessions end when it restarts."""
    if not env.get("HUB_SECRET_KEY"):
        log.warning("HUB_SECRET_KEY is not set: console sessions end when the hub restarts")
        env["HUB_SECRET_KEY"] = secrets.token_hex(32)


def serve_web() -> None:
    """uvicorn: requests are read whole on its event loop (``hub.web.asgi``) before the app
    runs, so slow clients hold nothing; ``HUB_WEB_WORKERS`` processes share the port."""
    import uvicorn

    share_secret_key(os.environ)
    os.nice(web_niceness(os.environ))  # 0 changes nothing
    uvicorn.run("hub.web.asgi:serve", factory=True, host=os.environ.get("HUB_HOST", "127.0.0.1"),
                port=int(os.environ.get("HUB_PORT", "8000")), workers=int(os.environ.get("HUB_WEB_WORKERS", "2")),
                http="httptools", loop="uvloop", lifespan="on", proxy_headers=False, server_header=False,
                access_log=bool(os.environ.get("HUB_ACCESS_LOG")),
                log_level="debug" if log_level() == "DEBUG" else "warning")


# ``hub run``'s web processes yield the CPU to its worker. The worker is one process (one core at
# most) and turns accepted events into leads; the web answers in milliseconds either way. At equal
# priority, on a machine the two share, the web processes outnumber the worker and take most of the
# CPU under a burst, and the backlog of unprocessed events grows for as long as it lasts. Niceness
# only weighs shares: a web process still gets every cycle the worker leaves.
RUN_WEB_NICENESS = 8


def web_niceness(env) -> int:
    text = env.get("HUB_WEB_NICE", "0").strip() or "0"
    if not text.isdigit() or int(text) > 19:
        raise SystemExit(f"HUB_WEB_NICE: a niceness from 0 to 19, not {text!r}")
    return int(text)


def run_worker(hub, burst: bool = False) -> None:
    from rq import Queue, SimpleWorker

    from hub.pipeline.heap import settle_heap
    from hub.store.queue import QUEUE_NAME

    settle_heap(hub)
    connection = hub.kicker.connection
    hub.kicker.kick("pipeline", force=True)  # whatever waited while no worker ran
    hub.kicker.kick("outbox", force=True)
    # SimpleWorker runs jobs in-process: no fork per job, and each job drains a whole backlog
    # in batches, so the job overhead is paid once per wake-up, not once per event.
    SimpleWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection).work(
        burst=burst, with_scheduler=False, logging_level="DEBUG" if log_level() == "DEBUG" else "WARNING")


def poll_mail(hub, once: bool = False) -> int:
    from hub.runtime import mailpoll

    return mailpoll.run(hub, once=once)


def child_environment() -> dict[str, str]:
    """One Redis and one metrics folder for every child of ``hub run``."""
    from hub.store.queue import embedded_server

    env = dict(os.environ)
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = f"unix://{embedded_server(str(INSTANCE)).socket_file}"
    metrics_dir = INSTANCE / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    env.setdefault("HUB_WEB_NICE", str(RUN_WEB_NICENESS))
    share_secret_key(env)
    return env


def run_all() -> None:
    from hub.config import load_config
    from hub.store.migrate import upgrade

    upgrade()
    env = child_environment()
    commands = {"web": ["web"], "worker": ["worker"], "scheduler": ["scheduler"]}
    if load_config()["mailboxes"]:
        commands["mail"] = ["mail", "poll"]
    Supervisor(commands, env).run()
    log.info("stopped")


class Supervisor:
    """Starts each child, restarts one that dies (with a pause), stops all on Ctrl-C/SIGTERM."""

    def __init__(self, commands: dict[str, list[str]], env: dict[str, str]):
        self.commands, self.env = commands, env
        self.children: dict[str, subprocess.Popen] = {}
        self.stopping = False

    def start(self, name: str) -> None:
        argv = [sys.executable, "-m", "hub", *self.commands[name]]
        # Its own process group: a terminal's Ctrl-C reaches only the supervisor, which stops
        # the children in order instead of each dying of its own KeyboardInterrupt.
        self.children[name] = subprocess.Popen(argv, env=self.env, process_group=0)
        log.info("started %s (pid %d)", name, self.children[name].pid)

    def stop(self, *_args) -> None:
        self.stopping = True

    def run(self) -> None:
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)
        for name in self.commands:
            self.start(name)
        log.info("hub running on http://%s (Ctrl-C stops)", bind_address())
        while not self.stopping:
            time.sleep(0.5)
            for name, child in list(self.children.items()):
                if child.poll() is not None and not self.stopping:
                    log.warning("%s exited with %s; restarting in 2s", name, child.returncode)
                    time.sleep(2)
                    self.start(name)
        self.shutdown()

    def shutdown(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
