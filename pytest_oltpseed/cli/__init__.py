"""``oltpseed``: a thin Typer shell over the core modules.

Each command parses options, calls the core, and renders the result; rules
(precedence, guardrails, SQL, servers) live in the modules it calls. Errors
from the core become one line on stderr and the contract's exit code.

The commands live in one module per job (:mod:`.seed`, :mod:`.stream`,
:mod:`.cdc`, :mod:`.domains`, :mod:`.server`, :mod:`.ui`), what they share in
:mod:`.options` and what they show in :mod:`.render`/:mod:`.render_cdc`.
They are registered here, in the order ``oltpseed --help`` lists them.

Start-up is part of the interface: ``--help`` builds every command's
signature, so the command modules import only Typer and :mod:`.options` at
the top and the core (psycopg, the domains, the stream, cdc, rich's tables)
inside the command that runs (``bench/startup.py``).
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Annotated

import typer

from pytest_oltpseed.cli import cdc, domains, seed, server, stream, ui
from pytest_oltpseed.cli.options import err, flag, out
from pytest_oltpseed.errors import OltpseedError

__all__ = ["app", "main"]

app = typer.Typer(
    name="oltpseed",
    help="Seed PostgreSQL with realistic, FK-consistent OLTP data and stream changes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
server_app = typer.Typer(
    help="The embedded PostgreSQL server (private cluster, wal_level=logical).",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")
cdc_app = typer.Typer(
    help="Capture the stream's changes through logical decoding and reconcile them.",
    no_args_is_help=True,
)
app.add_typer(cdc_app, name="cdc")
templates_app = typer.Typer(
    help="The seeded template databases the pytest plugin keeps on a --seed-dsn "
    "server.",
    no_args_is_help=True,
)
app.add_typer(templates_app, name="templates")
report_app = typer.Typer(
    help="Stream reports and changes files of several runs (--shard) as one.",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")


def _version(value: bool) -> None:
    """``--version``: eager, so it answers before any command is parsed."""
    if value:
        from pytest_oltpseed import __version__

        out.print(f"oltpseed {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        flag(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    domain_path: Annotated[
        list[Path] | None,
        typer.Option(
            "--domain-path",
            metavar="DIR",
            help="Also load domains from DIR (repeatable; after "
            "OLTPSEED_DOMAIN_PATH). Give it before the command.",
        ),
    ] = None,
) -> None:
    """Seed PostgreSQL with realistic, FK-consistent OLTP data and stream changes."""
    if domain_path:  # the registry is loaded only by a command that needs it
        from pytest_oltpseed.domains import use_paths

        use_paths(domain_path)


app.command("domains")(domains.domains_command)
app.command("init-db")(seed.init_db)
app.command()(seed.reset)
app.command()(seed.seed)
app.command("introspect")(domains.introspect_command)
app.command()(seed.counts)
app.command()(seed.check)
app.command()(stream.stream)
app.command()(stream.pause)
app.command()(stream.resume)
app.command()(ui.ui)
server_app.command("start")(server.server_start)
server_app.command("stop")(server.server_stop)
server_app.command("status")(server.server_status)
server_app.command("dsn")(server.server_dsn)
cdc_app.command("preflight")(cdc.cdc_preflight)
cdc_app.command("start")(cdc.cdc_start)
cdc_app.command("verify")(cdc.cdc_verify)
cdc_app.command("stop")(cdc.cdc_stop)
cdc_app.command("diff")(cdc.cdc_diff)
templates_app.command("list")(domains.templates_list)
templates_app.command("drop")(domains.templates_drop)
report_app.command("merge")(stream.report_merge)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app; map errors to one line and an exit code.

    The collector settings below are for a process that ends with this call
    (``argv`` taken from ``sys.argv``); a caller passing ``argv`` in-process
    (a test) keeps its own."""
    if argv is not None:
        _main(argv)
        return
    # A command imports some 500 modules; with the default threshold (700 new
    # objects) the collector runs ~140 times during a SMALL seed, some of them
    # over every object those imports made (~20% of its client CPU). Garbage
    # in cycles is still collected, every GC_YOUNG new objects.
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    try:
        _main(argv)
    finally:
        # The process ends here (every path raises SystemExit). The objects
        # left go to the permanent generation, which the interpreter's last
        # collections at exit skip: they traverse every object the imports
        # made, ~70 ms of a SMALL seed (docs/performance.md). Nothing needs
        # them: connections, files and thread pools are closed by their
        # blocks, the log handlers by logging's exit hook; the OS takes the rest.
        gc.freeze()


GC_YOUNG = 50_000
"""Young-generation threshold of a CLI process (Python's default: 700)."""


def _main(argv: list[str] | None) -> None:
    code: object = 0
    try:
        code = app(args=argv, prog_name="oltpseed", standalone_mode=False)
    except typer.TyperException as exc:
        _usage_failed(exc)
    except OltpseedError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        line = _driver_error(exc)
        if line is None:
            raise
        _fail(line, 1)
    sys.exit(code if isinstance(code, int) else 0)


def _driver_error(exc: Exception) -> str | None:
    """A psycopg error as the contract's line; ``None`` for anything else.

    psycopg is imported only by the commands that connect, so while it is not
    loaded the error cannot be one of its own.
    """
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return None
    from pytest_oltpseed.db import first_line

    if isinstance(exc, psycopg.OperationalError):
        return f"database connection failed: {first_line(exc)}"
    return f"database error: {first_line(exc)}"


def _usage_failed(exc: typer.TyperException) -> None:
    """A usage error from the option parser as the README's one line, not a
    boxed panel; a bare group (``oltpseed cdc``) still shows its help."""
    ctx = getattr(exc, "ctx", None)
    code = int(getattr(exc, "exit_code", 2))
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        out.print(ctx.get_help(), soft_wrap=True)
        sys.exit(code)
    from pytest_oltpseed.db import first_line

    message = first_line(Exception(exc.format_message()))
    hint = f" (see: {ctx.command_path} -h)" if ctx is not None else ""
    _fail(message[:1].lower() + message[1:] + hint, code)


def _fail(message: str, code: int) -> None:
    """The contract's error: one line on stderr, then the exit code."""
    err.print(f"oltpseed: error: {message}", soft_wrap=True, markup=False)
    sys.exit(code)
