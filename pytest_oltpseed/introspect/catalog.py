"""Catalog reader: what ``oltpseed introspect`` learns from PostgreSQL's catalog.

Read-only queries over ``pg_catalog`` (never ``information_schema``, which
hides enums' labels, domains' bases and identity/generated details). The
result is plain data (:class:`Catalog`), so choosing generators and writing
the domain never touch the database again.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from pytest_oltpseed.errors import UsageError


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    """``format_type`` of the column: ``character varying(40)``, ``integer[]``."""
    kind: str
    """``base``, ``enum``, ``domain``, ``array`` or ``other`` (composite, range)."""
    base: str
    """The scalar type behind a domain or an array's element (else ``type``)."""
    not_null: bool
    default: str | None
    identity: bool
    generated: bool
    length: int | None = None
    """varchar/char length, numeric precision."""
    scale: int | None = None
    labels: tuple[str, ...] = ()
    """An enum's labels (also for a domain over an enum)."""
    checks: tuple[str, ...] = ()
    """A domain's CHECK expressions, with ``VALUE`` as written."""

    @property
    def serial(self) -> bool:
        """Left to the server: identity, or an integer defaulting to nextval()."""
        return self.identity or bool(self.default and "nextval(" in self.default)


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    deferrable: bool


@dataclass(frozen=True)
class Check:
    name: str
    expression: str
    """The boolean expression, without ``CHECK`` and ``NOT VALID``."""


@dataclass
class Table:
    name: str
    """The domain's name for it: bare in ``public``, else ``schema.table``."""
    schema: str
    columns: list[Column]
    primary_key: tuple[str, ...] = ()
    uniques: list[tuple[str, ...]] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    partitioned_by: str | None = None
    """The single column of a RANGE partition key, when that is what it is."""
    partition_ranges: list[tuple[datetime, datetime]] = field(default_factory=list)
    rows: int = 0
    relname: str = ""
    """The table's own name in its schema."""

    def __post_init__(self) -> None:
        self.relname = self.relname or self.name.rpartition(".")[2]

    @property
    def ident(self) -> str:
        """The quoted, schema-qualified name for SQL."""
        return _qualified(self.schema, self.relname)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def written(self) -> list[Column]:
        """The columns the domain writes: not serial/identity, not generated."""
        return [c for c in self.columns if not c.serial and not c.generated]


@dataclass
class Catalog:
    schemas: tuple[str, ...]
    tables: dict[str, Table]
    server_version: str
    problems: list[str] = field(default_factory=list)


_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typtype, t.typcategory,
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '',
       a.attgenerated <> '', a.atttypmod, a.atttypid,
       coalesce(nullif(t.typelem, 0), nullif(t.typbasetype, 0), a.atttypid)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def domain_name(schema: str, name: str) -> str:
    """A table's name in a generated domain: bare in ``public`` (found through
    ``search_path``), else ``schema.table``, which every core module turns
    into a qualified identifier (``db.table_ident``)."""
    return name if schema == "public" else f"{schema}.{name}"


def read(
    conn: psycopg.Connection,
    schemas: Sequence[str] = ("public",),
    table_filter: Sequence[str] = (),
) -> Catalog:
    """The tables of ``schemas`` (partitions through their parent) and what
    they need; one domain covers them all.

    ``table_filter`` keeps tables whose name (bare or ``schema.table``) matches
    one of its shell patterns (``film*``); an FK to a table left out is a
    problem reported by the writer.
    """
    schemas = tuple(dict.fromkeys(schemas))
    found = conn.execute(
        "SELECT c.oid, n.nspname, c.relname, c.relkind "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') "
        "AND NOT c.relispartition ORDER BY n.nspname, c.relname",
        (list(schemas),),
    ).fetchall()
    for schema in schemas:
        if not any(row[1] == schema for row in found) and len(schemas) == 1:
            raise UsageError(f"schema {schema!r} has no tables to introspect")
        exists = conn.execute(
            "SELECT to_regnamespace(%s) IS NOT NULL", (_quoted(schema),)
        ).fetchone()
        if not (exists and exists[0]):
            raise UsageError(f"schema {schema!r} does not exist")
    if not found:
        raise UsageError(f"schemas {', '.join(schemas)} have no tables to introspect")
    tables: dict[str, Table] = {}
    for oid, schema, relname, relkind in found:
        name = domain_name(schema, relname)
        if table_filter and not any(
            fnmatch.fnmatch(relname, p) or fnmatch.fnmatch(name, p)
            for p in table_filter
        ):
            continue
        if relname.startswith("oltpseed_"):
            continue  # oltpseed's own bookkeeping (a seeded source), not business data
        rows = conn.execute(_COLUMNS, (oid,)).fetchall()
        table = Table(name, schema, [_column(conn, row) for row in rows])
        _constraints(conn, oid, table)
        if relkind == "p":
            _partitions(conn, oid, table)
            _partition_foreign_keys(conn, oid, table)
        table.triggers = [
            r[0]
            for r in conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal "
                "ORDER BY tgname",
                (oid,),
            )
        ]
        row = conn.execute(f"SELECT count(*) FROM {table.ident}").fetchone()
        table.rows = int(row[0]) if row else 0
        tables[name] = table
    if not tables:
        raise UsageError(
            f"--table-filter {' '.join(table_filter)} matches no table of "
            + ", ".join(repr(s) for s in schemas)
        )
    version = conn.execute("SHOW server_version").fetchone()
    return Catalog(schemas, tables, str(version[0]) if version else "?")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, name: str) -> str:
    return f"{_quoted(schema)}.{_quoted(name)}"


def _column(conn: psycopg.Connection, row: tuple) -> Column:
    (name, type_, typtype, category, not_null, default, identity, generated,
     typmod, typid, scalar) = row  # fmt: skip
    kind = {"e": "enum", "d": "domain"}.get(typtype, "base")
    if category == "A":
        kind = "array"
    elif typtype in ("c", "r", "m"):
        kind = "other"
    base_row = conn.execute(
        "SELECT format_type(%s, NULL), typtype FROM pg_type WHERE oid = %s",
        (scalar, scalar),
    ).fetchone()
    base = str(base_row[0]) if base_row else type_
    labels: tuple[str, ...] = ()
    enum_oid = scalar if base_row and base_row[1] == "e" else None
    if typtype == "e":
        enum_oid = typid
    if enum_oid is not None:
        labels = tuple(
            r[0]
            for r in conn.execute(
                "SELECT enumlabel FROM pg_enum WHERE enumtypid = %s "
                "ORDER BY enumsortorder",
                (enum_oid,),
            )
        )
    checks: tuple[str, ...] = ()
    if typtype == "d":
        checks = tuple(
            _expression(r[0])
            for r in conn.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contypid = %s AND contype = 'c' ORDER BY conname",
                (typid,),
            )
        )
        found = conn.execute(
            "SELECT typtypmod FROM pg_type WHERE oid = %s", (typid,)
        ).fetchone()
        typmod = found[0] if found else -1
    length, scale = _modifiers(base, int(typmod))
    return Column(
        name, type_, kind, base, bool(not_null), default, bool(identity),
        bool(generated), length, scale, labels, checks,
    )  # fmt: skip


def _modifiers(base: str, typmod: int) -> tuple[int | None, int | None]:
    """varchar(n) -> (n, None); numeric(p, s) -> (p, s); otherwise (None, None)."""
    if typmod < 0:
        return None, None
    if base.startswith(("character", "bit")):
        return typmod - 4, None
    if base.startswith("numeric"):
        return ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    return None, None


def _expression(definition: str) -> str:
    text = re.sub(r"\s+NOT VALID$", "", definition.strip())
    return text[len("CHECK ") :] if text.startswith("CHECK ") else text


def _names(conn: psycopg.Connection, oid: int, numbers: list[int]) -> tuple[str, ...]:
    rows = conn.execute(
        "SELECT attname FROM unnest(%s::int2[]) WITH ORDINALITY AS k(n, i) "
        "JOIN pg_attribute a ON a.attrelid = %s AND a.attnum = k.n ORDER BY k.i",
        (numbers, oid),
    ).fetchall()
    return tuple(r[0] for r in rows)


def _constraints(conn: psycopg.Connection, oid: int, table: Table) -> None:
    for (contype, name, conkey, parent_oid, parent_schema, parent_name, confkey,
         deferrable, definition) in conn.execute(
        "SELECT c.contype, c.conname, c.conkey, c.confrelid, n.nspname, p.relname, "
        "c.confkey, c.condeferrable, pg_get_constraintdef(c.oid) "
        "FROM pg_constraint c LEFT JOIN pg_class p ON p.oid = c.confrelid "
        "LEFT JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE c.conrelid = %s ORDER BY c.conname",
        (oid,),
    ).fetchall():  # fmt: skip
        if contype == "p":
            table.primary_key = _names(conn, oid, conkey)
        elif contype == "u":
            table.uniques.append(_names(conn, oid, conkey))
        elif contype == "c":
            table.checks.append(Check(name, _expression(definition)))
        elif contype == "f":
            table.foreign_keys.append(
                ForeignKey(
                    name,
                    _names(conn, oid, conkey),
                    domain_name(parent_schema, parent_name),
                    _names(conn, parent_oid, confkey),
                    bool(deferrable),
                )
            )
    # Unique indexes that are not constraints (CREATE UNIQUE INDEX), plain columns
    # only and not partial: those the generator can make unique by construction.
    for (numbers,) in conn.execute(
        "SELECT indkey::int2[] FROM pg_index i WHERE indrelid = %s AND indisunique "
        "AND NOT indisprimary AND indpred IS NULL AND 0 <> ALL (indkey::int2[]) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
        "WHERE c.conindid = i.indexrelid)",
        (oid,),
    ).fetchall():
        table.uniques.append(_names(conn, oid, list(numbers)))


def _partition_foreign_keys(conn: psycopg.Connection, oid: int, table: Table) -> None:
    """FKs declared on the partitions (Pagila's payment) are the parent's too:
    every row lands in one of them."""
    seen = {(fk.columns, fk.parent, fk.parent_columns) for fk in table.foreign_keys}
    for (child,) in conn.execute(
        "SELECT inhrelid FROM pg_inherits WHERE inhparent = %s ORDER BY inhrelid",
        (oid,),
    ).fetchall():
        probe = Table(table.name, table.schema, table.columns)
        _constraints(conn, child, probe)
        for fk in probe.foreign_keys:
            key = (fk.columns, fk.parent, fk.parent_columns)
            if key not in seen:
                seen.add(key)
                table.foreign_keys.append(fk)


_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def _partitions(conn: psycopg.Connection, oid: int, table: Table) -> None:
    """A RANGE partition key on one date/time column: the ranges rows must fall in."""
    row = conn.execute(
        "SELECT partstrat, partnatts, partattrs::int2[] FROM pg_partitioned_table "
        "WHERE partrelid = %s",
        (oid,),
    ).fetchone()
    if row is None or row[0] != "r" or row[1] != 1 or 0 in row[2]:
        return
    column = _names(conn, oid, list(row[2]))[0]
    if not table.column(column).base.startswith(("timestamp", "date")):
        return
    table.partitioned_by = column
    for (bound,) in conn.execute(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s",
        (oid,),
    ):
        found = _BOUND.search(bound or "")
        if found:
            table.partition_ranges.append(
                (_moment(found.group(1)), _moment(found.group(2)))
            )
    table.partition_ranges.sort()


def _moment(text: str) -> datetime:
    """A bound as written by PostgreSQL (``2022-01-01 00:00:00+00``), naive UTC."""
    text = re.sub(r"([+-]\d\d)$", r"\1:00", text.strip())
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment
