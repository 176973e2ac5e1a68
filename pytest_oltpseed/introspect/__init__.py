"""``oltpseed introspect``: a live schema becomes a domain package.

Three rooms: :mod:`.catalog` reads PostgreSQL's catalog, :mod:`.generators`
chooses each column's generator, :mod:`.writer` writes the package (with
:mod:`.ddl` for the captured DDL and the ownership rule); generated code
declares its columns with :mod:`.vocabulary` and runs on :mod:`.runtime`.
The package is written whole or not at all.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from pytest_oltpseed.config import describe
from pytest_oltpseed.errors import UsageError
from pytest_oltpseed.introspect import catalog as catalog_reader
from pytest_oltpseed.introspect import ddl, generators, writer
from pytest_oltpseed.introspect.writer import Written

GENERATED = writer.MARKER


def introspect(
    conn: psycopg.Connection,
    *,
    name: str,
    out: Path,
    schemas: Sequence[str] = ("public",),
    table_filter: Sequence[str] = (),
    rules: Sequence[str] = (),
    base: int = 2000,
    command: str = "oltpseed introspect",
) -> Written:
    """Write the domain ``name`` for ``schemas`` into ``out/name``.

    The captured DDL is the whole of each schema (its objects are the
    domain's own in the target); ``table_filter`` chooses the tables the
    domain seeds, streams and checks. With a schema other than ``public``
    every table is named ``schema.table``.

    An existing ``out/name`` is replaced only when it is a package this
    command wrote (its ``__init__.py`` says so): regenerating is safe,
    overwriting someone's own code is refused.
    """
    from pytest_oltpseed.server.embedded import find_bindir

    if base < 10:
        raise UsageError(f"--base-rows {base}: at least 10")
    parsed = generators.parse_rules(rules)
    _check_out(out)  # before the catalog is read and pg_dump runs
    target = out / name
    if target.exists() and not _generated(target):
        raise UsageError(
            f"{target} exists and was not written by oltpseed introspect: "
            "choose another --out or --name"
        )
    found = catalog_reader.read(conn, schemas, table_filter)
    _refuse_quoted_names(found.schemas, found.tables)
    objects = ddl.owned_objects(conn, found.schemas)
    needed = ddl.extensions(conn, found.schemas)
    # Only the basic keywords: pg_dump's libpq may be older than psycopg's and
    # reject options it does not know (sslcertmode).
    params: dict[str, str | int | None] = {
        "host": conn.info.host,
        "port": conn.info.port,
        "user": conn.info.user,
        "dbname": conn.info.dbname,
    }
    password = conn.pgconn.password
    if password:
        params["password"] = password.decode()
    conninfo = make_conninfo("", **params)
    captured = ddl.capture(conninfo, found.schemas, str(find_bindir()))
    source = f"database {conn.info.dbname!r} on {conn.info.host}:{conn.info.port}"
    files, written = writer.render(
        found, name, source, command, captured, objects,
        extensions=needed, base=base, rules=parsed,
    )  # fmt: skip
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out))
    except OSError as exc:  # root on a read-only file system, a file on the way
        raise UsageError(f"cannot write --out {out}: {exc.strerror or exc}") from None
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    written.package = target
    return written


_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_$]*")


def _refuse_quoted_names(schemas: Iterable[str], tables: Iterable[str]) -> None:
    """Schema and table names that need double quotes (mixed case, spaces)
    are not carried through pg_dump, init-db, seeding and the stream yet:
    refused here, in one line, before anything is written."""
    odd = [
        name
        for name in (*schemas, *tables)
        if not all(_PLAIN_NAME.fullmatch(part) for part in name.split("."))
    ]
    if odd:
        raise UsageError(
            f"names that need double quotes are not supported yet: "
            f"{', '.join(sorted(set(odd))[:5])}; leave them out with --table-filter "
            "or rename them to lower case"
        )


def redacted_command(argv: Sequence[str]) -> str:
    """The command line for the generated header, with ``--dsn`` reduced to
    ``host:port/dbname``: a password must never land in the written files."""
    words = ["oltpseed"]
    hide = False
    for word in argv:
        if hide:
            words.append(shlex.quote(describe(word)))
            hide = False
        elif word == "--dsn":
            words.append(word)
            hide = True
        elif word.startswith("--dsn="):
            words.append("--dsn=" + shlex.quote(describe(word[len("--dsn=") :])))
        else:
            words.append(shlex.quote(word))
    return " ".join(words)


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` this user cannot create the package in."""
    folder = out.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the directories mkdir will create
    if not folder.is_dir():
        raise UsageError(f"cannot write --out {out}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write --out {out}: {folder} is not writable")


def _generated(path: Path) -> bool:
    init = path / "__init__.py"
    return init.is_file() and GENERATED in init.read_text(encoding="utf-8")


__all__ = ["Written", "introspect", "redacted_command"]
