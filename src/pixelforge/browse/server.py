"""Serving the browser: bind the socket first (so the printed URL has the real port, also for --port 0),
then run uvicorn until Ctrl-C, which stops it cleanly (open requests finish; the curation file is
flushed after every decision, so nothing is lost)."""

from __future__ import annotations

import ipaddress
import socket

from pixelforge.browse.app import LOCAL_HOSTS, create_app
from pixelforge.browse.session import Session
from pixelforge.errors import PixelforgeError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        hint = "; choose another with --port (0: any free port)" if exc.errno in (98, 48, 10048) else ""
        raise PixelforgeError(f"cannot listen on {host}:{port} ({exc.strerror or exc}){hint}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"


def allowed_hosts(host: str) -> list[str]:
    # on loopback the Host header must name this machine (a rebound DNS name of another site cannot);
    # on another interface the name users type is unknown, so the token and Origin checks guard writes
    return list(LOCAL_HOSTS) if is_loopback(host) else ["*"]


def serve(session: Session, host: str = "127.0.0.1", port: int = 8765, *, announce=print) -> None:
    """Start the session's app on host:port and block until Ctrl-C."""
    import uvicorn

    sock = bind(host, port)
    app = create_app(session, allowed_hosts=allowed_hosts(host))
    session.start()
    announce(url_of(sock, host))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled, after a clean shutdown: for a server it is the way to stop
    finally:
        session.stop()
        sock.close()


class Background:
    """The app served from a thread (tests, screenshots): ``with Background(session) as url: ...``."""

    def __init__(self, session: Session, host: str = "127.0.0.1", port: int = 0):
        self.session, self.host, self.port = session, host, port

    def __enter__(self) -> str:
        import threading
        import time

        import uvicorn

        self.sock = bind(self.host, self.port)
        app = create_app(self.session, allowed_hosts=allowed_hosts(self.host))
        self.session.start()
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise PixelforgeError("the browse server did not start")
            time.sleep(0.02)
        return url_of(self.sock, self.host)

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.session.stop()
        self.sock.close()
