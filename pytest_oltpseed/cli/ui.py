"""``oltpseed ui``: serve the local page (the ASGI app is :mod:`pytest_oltpseed.ui`,
imported only when the command runs: it needs the ``ui`` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from pytest_oltpseed.cli.options import DsnOption, ForceOption, flag, out, say


def ui(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (default: loopback).")
    ] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Port (default: a free one)."),
    ] = None,
    open_browser: Annotated[
        bool, flag("--open", help="Open the page in the default browser.")
    ] = False,
    dsn: DsnOption = None,
    force: ForceOption = False,
) -> None:
    """Serve a local page to seed, stream, watch and verify (needs the ui extra)."""
    from pytest_oltpseed import ui as web

    web.serve(
        host=host,
        port=port,
        open_browser=open_browser,
        dsn=dsn,
        force=force,
        say=say,
        show_url=lambda url: out.print(f"oltpseed ui: {url}", soft_wrap=True),
    )
