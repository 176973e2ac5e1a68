"""The source schema's DDL, captured with ``pg_dump --schema-only``, and the
ownership rule that keeps a generated domain away from a user's objects.

The rule (docs/domains.md, "Generated domains own only what they create"):

* ``init-db`` applies the captured DDL only where none of the domain's
  objects exists yet (an empty target). When every table is already there
  *and* carries the domain's ownership mark, it does nothing (a second
  ``init-db`` is harmless); anything else is refused and nothing is changed.
* Every object the DDL creates gets ``COMMENT ON ... IS 'oltpseed:<domain>
  ...'``, the mark, in the same transaction; a schema other than ``public``
  is one of those objects (an existing one means the target is not empty).
* Extensions the schemas use (``uuid-ossp`` for a column default) are
  created ``IF NOT EXISTS`` before the DDL, never marked and never dropped:
  they are the database's, not the domain's.
* ``reset`` drops an object only if it exists *and* bears the mark, without
  CASCADE: a same-named table of the user's (no mark) survives, and a user's
  object that depends on one of ours (or sits in one of our schemas) stops
  the reset.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from pytest_oltpseed.errors import OltpseedError

MARK = "oltpseed:{domain} (created by this generated domain; reset may drop it)"


@dataclass(frozen=True)
class Owned:
    """An object the captured DDL creates: its kind for COMMENT/DROP and name."""

    kind: str  # TABLE, VIEW, MATERIALIZED VIEW, SEQUENCE, TYPE, DOMAIN, FUNCTION...
    name: str  # qualified, quoted, with arguments for routines
    check: str  # SQL expression that is the object's oid (or NULL when absent)
    catalog: str  # the catalog its comment lives in (pg_class, pg_type, pg_proc)


_OBJECTS = """
SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW'
       WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' END,
       format('%%I.%%I', n.nspname, c.relname), 'pg_class', c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(s)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid
                  AND d.classid = 'pg_class'::regclass AND d.deptype IN ('e'))
UNION ALL
SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
       format('%%I.%%I', n.nspname, t.typname), 'pg_type', t.typtype
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = ANY(%(s)s) AND t.typtype IN ('e', 'd', 'c', 'r')
  AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid
                  AND d.classid = 'pg_type'::regclass AND d.deptype = 'e')
UNION ALL
SELECT CASE p.prokind WHEN 'a' THEN 'AGGREGATE' WHEN 'p' THEN 'PROCEDURE'
       ELSE 'FUNCTION' END,
       format('%%I.%%I(%%s)', n.nspname, p.proname,
              oidvectortypes(p.proargtypes)), 'pg_proc', p.prokind
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY(%(s)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid
                  AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e')
UNION ALL
SELECT 'SCHEMA', format('%%I', n.nspname), 'pg_namespace', ''
FROM pg_namespace n WHERE n.nspname = ANY(%(s)s) AND n.nspname <> 'public'
"""
# Drop order: what depends on tables first, then tables, then what they use.
_ORDER = ["VIEW", "MATERIALIZED VIEW", "TABLE", "SEQUENCE", "AGGREGATE",
          "PROCEDURE", "FUNCTION", "DOMAIN", "TYPE", "SCHEMA"]  # fmt: skip


def owned_objects(conn: psycopg.Connection, schemas: Sequence[str]) -> list[Owned]:
    """The schemas' own objects (not an extension's), in drop order; the
    schemas themselves too, but ``public``."""
    found = []
    rows = conn.execute(_OBJECTS, {"s": list(schemas)}).fetchall()
    for kind, name, catalog, _ in rows:
        if name.split(".", 1)[-1].strip('"').startswith("oltpseed_"):
            continue  # a seeded source's bookkeeping, left out of the DDL too
        if catalog == "pg_namespace":
            check = f"to_regnamespace('{_literal(name)}')"
        elif catalog == "pg_proc":
            check = f"to_regprocedure('{_literal(name)}')"
        elif catalog == "pg_type":
            check = f"to_regtype('{_literal(name)}')"
        else:
            check = f"to_regclass('{_literal(name)}')"
        found.append(Owned(kind, name, check, catalog))
    return sorted(found, key=lambda o: (_ORDER.index(o.kind), o.name))


def _literal(text: str) -> str:
    return text.replace("'", "''")


_EXTENSIONS = """
SELECT DISTINCT e.extname, x.nspname
FROM pg_depend d
JOIN pg_depend m ON m.classid = d.refclassid AND m.objid = d.refobjid
  AND m.deptype = 'e' AND m.refclassid = 'pg_extension'::regclass
JOIN pg_extension e ON e.oid = m.refobjid
JOIN pg_namespace x ON x.oid = e.extnamespace
WHERE d.deptype IN ('n', 'a')
  AND coalesce((SELECT c.relnamespace::regnamespace::text FROM pg_attrdef a
                 JOIN pg_class c ON c.oid = a.adrelid
                 WHERE d.classid = 'pg_attrdef'::regclass AND a.oid = d.objid),
               (SELECT c.relnamespace::regnamespace::text FROM pg_rewrite r
                 JOIN pg_class c ON c.oid = r.ev_class
                 WHERE d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid),
               (pg_identify_object(d.classid, d.objid, 0)).schema) = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend o WHERE o.classid = d.classid
                  AND o.objid = d.objid AND o.deptype = 'e')
ORDER BY 1
"""


def extensions(conn: psycopg.Connection, schemas: Sequence[str]) -> list[str]:
    """``CREATE EXTENSION IF NOT EXISTS`` for each extension that objects of
    ``schemas`` use (a default calling ``uuid_generate_v1()``): pg_dump of a
    schema leaves them out, and the DDL would fail without them."""
    statements = []
    for extension, schema in conn.execute(_EXTENSIONS, (list(schemas),)).fetchall():
        where = (
            ""
            if schema in schemas and schema != "public"
            else (f' WITH SCHEMA "{schema}"')
        )
        statements.append(f'CREATE EXTENSION IF NOT EXISTS "{extension}"{where};')
    return statements


def capture(conninfo: str, schemas: Sequence[str], bindir: str) -> str:
    """``pg_dump --schema-only`` of ``schemas``, without session settings.

    ``SET``/``set_config`` lines and psql meta-commands are removed: the DDL
    runs inside one ``EXECUTE`` of the install, where they would leak into
    the caller's session (``check_function_bodies`` is kept, as ``SET LOCAL``).
    ``CREATE SCHEMA public`` is left out (every database has it); the other
    schemas are created by the DDL, and marked as the domain's.
    """
    selection = []
    for schema in schemas:
        selection += ["--schema", schema, "--exclude-table", f"{schema}.oltpseed_*"]
    done = subprocess.run(
        [f"{bindir}/pg_dump", "--schema-only", "--no-owner", "--no-privileges",
         "--no-comments", "--no-publications", "--no-subscriptions",
         "--no-tablespaces", "--no-security-labels", *selection,
         "--dbname", conninfo],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        shown = ", ".join(repr(s) for s in schemas)
        raise OltpseedError(f"pg_dump of schema {shown} failed: {last}")
    # Function bodies name tables created later in the dump: as pg_dump does,
    # skip their validation, for this transaction only.
    kept = ["SET LOCAL check_function_bodies = false;"]
    for line in done.stdout.splitlines():
        if line.startswith(("SET ", "\\")) or "pg_catalog.set_config(" in line:
            continue
        if re.match(r"^(CREATE|ALTER|COMMENT ON) SCHEMA public\b", line):
            continue
        if line.startswith("--") or (
            not line.strip() and kept and not kept[-1].strip()
        ):
            continue
        kept.append(line)
    return "\n".join(kept).strip() + "\n"


def install_sql(
    domain: str,
    ddl: str,
    objects: list[Owned],
    tables: list[str],
    extensions: Sequence[str] = (),
) -> str:
    """One DO block: refuse a non-empty target, run the DDL (after the
    extensions it needs), mark what it made."""
    mark = MARK.format(domain=domain)
    tag = "oltpseed_ddl"
    while f"${tag}$" in ddl:
        tag += "_"
    table_checks = ",\n    ".join(f"to_regclass('{_literal(t)}')" for t in tables)
    any_checks = " OR ".join(f"{o.check} IS NOT NULL" for o in objects) or "false"
    comments = "\n".join(
        f"COMMENT ON {o.kind} {o.name} IS '{_literal(mark)}';" for o in objects
    )
    return f"""DO $oltpseed$
DECLARE
  ours int;
BEGIN
  SELECT count(*) INTO ours FROM unnest(ARRAY[
    {table_checks}
  ]::regclass[]) AS t(oid)
  WHERE obj_description(t.oid, 'pg_class') = '{_literal(mark)}';
  IF ours = {len(tables)} THEN
    RETURN;  -- installed by this domain already: nothing to do
  END IF;
  IF {any_checks} THEN
    RAISE EXCEPTION 'the {domain} domain applies its captured DDL only into an '
      'empty target: objects of the same names exist here and are not its own '
      '(nothing was changed)';
  END IF;
  EXECUTE ${tag}$
{"".join(line + chr(10) for line in extensions)}{ddl}
{comments}
${tag}$;
END $oltpseed$;
"""


def drop_sql(domain: str, objects: list[Owned]) -> str:
    """Drop the objects that exist and bear the mark, never with CASCADE.

    Dependencies among our own objects run both ways (a function returning
    a table's row type, a trigger calling a function), so drops are tried in
    rounds, each in its own subtransaction, until all are gone; when a round
    drops nothing, what is left is held by an object that is not ours, and
    the reset fails whole with PostgreSQL's message naming it.
    """
    mark = _literal(MARK.format(domain=domain))
    rows = ",\n    ".join(
        f"('{o.kind}', '{_literal(o.name)}', '{o.check.split('(')[0]}', '{o.catalog}')"
        for o in objects
    )
    return f"""-- Drops the {domain} domain's objects, and only those: each one only if
-- it exists and bears the domain's mark (its COMMENT), never with CASCADE,
-- so a user's object of the same name, or one depending on ours, survives.
DO $oltpseed$
DECLARE
  item record;
  found oid;
  left_over int;
  dropped bool;
  problem text;
BEGIN
  CREATE TEMP TABLE oltpseed_drop (kind text, name text, fn text, catalog text)
    ON COMMIT DROP;
  INSERT INTO oltpseed_drop VALUES
    {rows};
  LOOP
    dropped := false;
    left_over := 0;
    FOR item IN SELECT * FROM oltpseed_drop LOOP
      EXECUTE format('SELECT %s(%L)::oid', item.fn, item.name) INTO found;
      IF found IS NULL OR obj_description(found, item.catalog)
          IS DISTINCT FROM '{mark}' THEN
        DELETE FROM oltpseed_drop WHERE name = item.name AND kind = item.kind;
        CONTINUE;
      END IF;
      BEGIN
        EXECUTE format('DROP %s %s', item.kind, item.name);
        DELETE FROM oltpseed_drop WHERE name = item.name AND kind = item.kind;
        dropped := true;
      EXCEPTION WHEN dependent_objects_still_exist THEN
        problem := SQLERRM;
        left_over := left_over + 1;
      END;
    END LOOP;
    EXIT WHEN left_over = 0;
    IF NOT dropped THEN
      RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
        MESSAGE = problem;
    END IF;
  END LOOP;
  DROP TABLE oltpseed_drop;
END $oltpseed$;
"""
