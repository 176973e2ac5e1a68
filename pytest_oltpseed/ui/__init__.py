"""``oltpseed ui``: a local web page over the same core as the CLI.

Layout: :mod:`.jobs` holds the state and starts the work (CLI commands as
child processes, core functions for quick reads), :mod:`.app` maps URLs to
it, ``static/`` renders it in the browser. Starlette and uvicorn come with
the optional ``[ui]`` extra; this module imports them only when serving.
"""

from __future__ import annotations

import errno
import ipaddress
import secrets
import socket
import threading
import webbrowser
from collections.abc import Callable
from typing import Any

from pytest_oltpseed import db
from pytest_oltpseed.config import load_settings
from pytest_oltpseed.errors import OltpseedError, UsageError

INSTALL_HINT = (
    "the UI needs the [ui] extra: pip install 'pytest-oltpseed[ui]' "
    "(starlette and uvicorn)"
)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: only this machine reaches it."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str, port: int = 0) -> int:
    """A port free on ``host`` (``port`` itself when given and free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            return int(sock.getsockname()[1])
    except (socket.gaierror, UnicodeError) as exc:  # not a host name or address
        raise UsageError(f"--host {host}: {_reason(exc)}") from None
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:  # an address of another machine
            raise UsageError(
                f"--host {host}: not an address of this machine ({_reason(exc)})"
            ) from None
        raise OltpseedError(f"cannot serve on {host}:{port}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def serve(
    *,
    host: str,
    port: int | None,
    open_browser: bool,
    dsn: str | None,
    force: bool,
    say: Callable[[str], None],
    show_url: Callable[[str], None],
) -> None:
    """Serve until Ctrl-C, then stop a running stream as SIGINT does."""
    try:
        import uvicorn

        from pytest_oltpseed.ui.app import create_app
    except ImportError:
        raise OltpseedError(INSTALL_HINT) from None
    from pytest_oltpseed.ui.jobs import Hub

    settings = load_settings(dsn=dsn, force=force)
    chosen = free_port(host, port or 0)  # a bad --host: before a server starts
    if not is_loopback(host):
        say(
            f"warning: --host {host} is not loopback: anyone who can reach it and "
            "learns the URL can write to the database"
        )
    conninfo = db.resolve_conninfo(settings, say)
    hub = Hub(settings, conninfo, force=force)
    token = secrets.token_urlsafe(18)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{chosen}/{token}/"
    config = uvicorn.Config(
        create_app(hub, token),
        host=host,
        port=chosen,
        log_level="error",
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="off",
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:  # the URL only once it answers
                show_url(url)
                if open_browser:
                    threading.Timer(0.2, webbrowser.open, args=(url,)).start()

        def handle_exit(self, sig: int, frame: Any) -> None:
            hub.close()  # end the live feeds so the shutdown need not cut them
            super().handle_exit(sig, frame)

    server = Server(config)
    if (refused := hub.guard()) is not None:
        say(f"writing disabled: {refused}")
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled: stopping is the normal end
    finally:
        hub.shutdown(say)
