"""A large stage's constraints, made cheap and kept safe: FKs and indexes
dropped and restored (:class:`_Deferred`), or FK triggers off and one
set-based check at the end (:class:`_SetChecked`). Moved out of :mod:`.seeder`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from pytest_oltpseed.db import has_rows, regclass_names
from pytest_oltpseed.errors import OltpseedError

if TYPE_CHECKING:
    from pytest_oltpseed.seed.seeder import Stage


class _Deferred:
    """Spec 000 §5.3, made safe: FKs and secondary indexes of a large stage's
    tables are dropped inside the stage's transaction and re-created at its
    end. Re-adding a FK validates every row in one set-based check, so a bad
    row still fails the stage, and the whole change is atomic: on any error
    PostgreSQL restores the constraints with the rollback. While the stage
    runs, its tables are locked against other writers.

    With ``keys``, an empty table's primary key and unique constraints go too
    (as ``pgbench -i`` adds its keys after the load): building a key's index
    once, sorted, costs the server less than keeping it up to date row by
    row, and re-adding it checks uniqueness over every row just the same.
    Only keys nothing depends on (a parent's key is what its children's FKs
    reference) and that ``ADD CONSTRAINT`` rebuilds exactly (see
    :data:`_KEYS`), and only when no logical replication slot
    on the database could decode the stage: a decoded INSERT made while its
    table had no key would reach a CDC consumer without one (Debezium keys
    its records by it). A slot made later cannot decode a transaction that
    was already running when it was made.
    """

    @staticmethod
    def allowed(conn: psycopg.Connection, stage: Stage) -> bool:
        """Whether this role may drop and re-add the stage's FKs and indexes.

        That needs ownership of the stage's tables (and REFERENCES on their
        parents); a DML-only role seeds without the speed-up instead of failing.
        """
        row = conn.execute(
            "WITH t AS (SELECT unnest(%s::text[])::regclass AS oid) "
            "SELECT (SELECT bool_and(pg_has_role(c.relowner, 'USAGE')) "
            "FROM pg_class c JOIN t USING (oid)) "
            "AND (SELECT coalesce(bool_and(has_table_privilege("
            "f.confrelid, 'REFERENCES')), true) "
            "FROM pg_constraint f JOIN t ON f.conrelid = t.oid "
            "WHERE f.contype = 'f')",
            (regclass_names(conn, [stage.table, *stage.item_tables]),),
        ).fetchone()
        return bool(row and row[0])

    def __init__(
        self,
        conn: psycopg.Connection,
        stage: Stage,
        *,
        keep_foreign_keys: bool,
        keys: bool = False,
    ) -> None:
        """``keep_foreign_keys``: their triggers are off (:class:`_SetChecked`),
        so only the indexes are dropped. ``keys``: the empty tables' keys too
        (only when nothing in the stage looks rows up by key before
        :meth:`restore`)."""
        self.conn = conn
        tables = regclass_names(conn, [stage.table, *stage.item_tables])
        keys = keys and not _decoded(conn)
        empty = [t for t in tables if keys and not has_rows(conn, sql.SQL(t))]
        self.keys = conn.execute(_KEYS, (empty,)).fetchall() if empty else []
        self.constraints = (
            []
            if keep_foreign_keys
            else conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY("
                "SELECT unnest(%s::text[])::regclass) ORDER BY 1, 2",
                (tables,),
            ).fetchall()
        )
        self.indexes = conn.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i WHERE NOT i.indisunique AND NOT i.indisprimary "
            "AND i.indrelid = ANY(SELECT unnest(%s::text[])::regclass)",
            (tables,),
        ).fetchall()
        for table, name, _ in self.constraints:
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.SQL(table), sql.Identifier(name)
                )
            )
        for name, _ in self.indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))
        for table, name, _ in self.keys:
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.SQL(table), sql.Identifier(name)
                )
            )

    def restore(self) -> None:
        for table, name, definition in self.keys:
            self.conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    sql.SQL(table), sql.Identifier(name), sql.SQL(definition)
                )
            )
        for _, definition in self.indexes:
            self.conn.execute(definition)  # type: ignore[arg-type]
        for table, name, definition in self.constraints:
            self.conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    sql.SQL(table), sql.Identifier(name), sql.SQL(definition)
                )
            )


def _decoded(conn: psycopg.Connection) -> bool:
    """Whether a logical replication slot on this database may decode what
    the running transaction writes.

    The transaction takes its id first: a slot made afterwards waits for it
    to end before it decodes anything, so it never sees this one's writes;
    a transaction without an id yet would not hold a new slot back."""
    row = conn.execute(
        "SELECT pg_current_xact_id() IS NOT NULL AND EXISTS (SELECT 1 FROM "
        "pg_replication_slots WHERE slot_type = 'logical' "
        "AND database = current_database())"
    ).fetchone()
    return bool(row and row[0])


class _SetChecked:
    """A stage's FKs checked once, set-based, instead of by a trigger per row.

    Inside the stage's transaction, ``session_replication_role = replica``
    (``SET LOCAL``: it ends with the transaction) keeps the FK triggers from
    firing on every copied row; at the end one anti-join per FK finds any row
    without its parent (the query ``ALTER TABLE ... ADD FOREIGN KEY`` runs),
    and a violation fails the stage, which rolls back whole. Nothing in the
    schema changes, so the parent tables are not locked while the rows are
    copied, only in SHARE mode from the check to the commit (see
    :meth:`validate`): stages that reference the same parents can run at
    once on several connections (see :meth:`Seeder.run`), where dropping and
    re-adding their FKs would queue them one behind the other on the
    parent's lock from the drop on.

    Used only when the role may set the parameter (a superuser, or granted
    it), when every trigger firing on INSERT on the stage's tables is an FK's
    own (a domain's would be skipped too; ``updated_at`` ones fire on UPDATE),
    when those tables and their parents are plain tables with validated FKs,
    and when the role may lock the parents (see :meth:`validate`); otherwise
    the triggers fire as usual.
    """

    @classmethod
    def start(cls, conn: psycopg.Connection, stage: Stage) -> _SetChecked | None:
        tables = regclass_names(conn, [stage.table, *stage.item_tables])
        row = conn.execute(_SET_CHECKABLE, (tables,)).fetchone()
        if not (row and row[0]):
            return None
        try:
            with conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
        except psycopg.errors.InsufficientPrivilege:
            return None
        return cls(conn, tables)

    def __init__(self, conn: psycopg.Connection, tables: Sequence[str]) -> None:
        self.conn = conn
        self.foreign_keys = conn.execute(_FOREIGN_KEYS, {"t": list(tables)}).fetchall()

    def triggers_back(self) -> None:
        """Triggers fire again (a hook's ``finish`` updates rows as usual)."""
        self.conn.execute("SET LOCAL session_replication_role = DEFAULT")

    def validate(self) -> None:
        """Every FK holds for every row (MATCH SIMPLE or FULL, as declared).

        The parents are locked first in SHARE mode until the stage commits, as
        ``ALTER TABLE ... ADD FOREIGN KEY`` locks them: the copied rows took
        no row lock on their parents (the triggers that would were off), so
        a parent deleted after the check and before the commit would leave
        them orphans. SHARE lets other readers and checks through and holds
        writers to the parents only from here to the commit."""
        # As ALTER TABLE does for this check: the anti-join may hash in memory.
        self.conn.execute(
            "SELECT set_config('work_mem', current_setting('maintenance_work_mem'),"
            " true)"
        )
        # not the stage's own tables (a header, a self-reference): writers to
        # them wait for this stage anyway, and two stages locking their own
        # tables would deadlock
        parents = {(fk[3], fk[4]) for fk in self.foreign_keys if not fk[8]}
        for parent in sorted(parents):
            self.conn.execute(
                sql.SQL("LOCK TABLE ONLY {} IN SHARE MODE").format(
                    sql.Identifier(*parent)
                )
            )
        for fk in self.foreign_keys:
            schema, table, name, parent_schema, parent, fk_columns, keys, full, _ = fk
            child_cols = [sql.SQL("c.{}").format(sql.Identifier(c)) for c in fk_columns]
            match = sql.SQL(" AND ").join(
                sql.SQL("p.{} = {}").format(sql.Identifier(k), c)
                for k, c in zip(keys, child_cols, strict=True)
            )
            all_set = sql.SQL(" AND ").join(
                sql.SQL("{} IS NOT NULL").format(c) for c in child_cols
            )
            violation = sql.SQL(
                "({all_set} AND NOT EXISTS (SELECT 1 FROM ONLY {parent} p "
                "WHERE {match}))"
            ).format(
                all_set=all_set,
                parent=sql.Identifier(parent_schema, parent),
                match=match,
            )
            if full:  # MATCH FULL: some columns null and others not
                any_set = sql.SQL(" OR ").join(
                    sql.SQL("{} IS NOT NULL").format(c) for c in child_cols
                )
                violation = sql.SQL("{} OR (({}) AND NOT ({}))").format(
                    violation, any_set, all_set
                )
            query = sql.SQL("SELECT {} FROM ONLY {} c WHERE {} LIMIT 1").format(
                sql.SQL(", ").join(child_cols), sql.Identifier(schema, table), violation
            )
            bad = self.conn.execute(query).fetchone()
            if bad is not None:
                raise OltpseedError(
                    f"{table}: a seeded row violates {name} ({', '.join(fk_columns)}"
                    f" = {', '.join(map(str, bad))} is not in {parent}); "
                    "the stage was rolled back"
                )


_SET_CHECKABLE = """
WITH t AS (SELECT unnest(%s::text[])::regclass AS oid),
fk AS (SELECT f.* FROM pg_constraint f JOIN t ON f.conrelid = t.oid
       WHERE f.contype = 'f')
SELECT NOT EXISTS (
    SELECT 1 FROM pg_trigger g JOIN t ON g.tgrelid = t.oid
    LEFT JOIN pg_constraint c ON c.oid = g.tgconstraint
    WHERE g.tgenabled <> 'D' AND (g.tgtype & 4) <> 0  -- fires on INSERT
    AND NOT (g.tgisinternal AND c.contype = 'f'))
AND NOT EXISTS (SELECT 1 FROM fk WHERE NOT fk.convalidated)
AND NOT EXISTS (  -- LOCK ... IN SHARE MODE needs one of these on each parent
    SELECT 1 FROM fk WHERE NOT (has_table_privilege(fk.confrelid, 'UPDATE')
    OR has_table_privilege(fk.confrelid, 'DELETE')
    OR has_table_privilege(fk.confrelid, 'TRUNCATE')))
AND NOT EXISTS (
    SELECT 1 FROM pg_class r
    WHERE (r.oid IN (SELECT oid FROM t) OR r.oid IN (SELECT confrelid FROM fk))
    AND (r.relkind <> 'r' OR EXISTS (
        SELECT 1 FROM pg_inherits i WHERE r.oid IN (i.inhrelid, i.inhparent))))
"""
"""Whether the stage's FKs can be checked set-based (see :class:`_SetChecked`)."""

_FOREIGN_KEYS = """
SELECT cn.nspname::text, c.relname::text, f.conname::text, pn.nspname::text,
       p.relname::text,
       ARRAY(SELECT a.attname::text FROM unnest(f.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.n
             ORDER BY k.i),
       ARRAY(SELECT a.attname::text FROM unnest(f.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.n
             ORDER BY k.i),
       f.confmatchtype = 'f',
       f.confrelid = ANY(SELECT unnest(%(t)s::text[])::regclass)
FROM pg_constraint f
JOIN pg_class c ON c.oid = f.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = f.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE f.contype = 'f' AND f.conrelid = ANY(SELECT unnest(%(t)s::text[])::regclass)
ORDER BY 1, 2, 3
"""

_KEYS = """
WITH t AS (SELECT unnest(%s::text[])::regclass AS oid)
SELECT k.conrelid::regclass::text, k.conname::text, pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN t ON k.conrelid = t.oid
JOIN pg_class r ON r.oid = k.conrelid
JOIN pg_index i ON i.indexrelid = k.conindid
JOIN pg_class x ON x.oid = k.conindid
WHERE k.contype IN ('p', 'u') AND r.relkind = 'r'
AND NOT i.indisreplident AND NOT i.indisclustered
AND x.reltablespace = 0 AND x.reloptions IS NULL
AND NOT EXISTS (SELECT 1 FROM pg_depend d  -- an FK, a view's GROUP BY, ...
    WHERE d.deptype = 'n' AND (
        (d.refclassid = 'pg_constraint'::regclass AND d.refobjid = k.oid)
        OR (d.refclassid = 'pg_class'::regclass AND d.refobjid = k.conindid)))
AND NOT EXISTS (SELECT 1 FROM pg_description c
    WHERE c.objoid IN (k.oid, k.conindid))
AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE r.oid IN (h.inhrelid, h.inhparent))
ORDER BY 1, 2
"""
"""The PK and unique constraints of a stage's tables that may be rebuilt after
the load (see :class:`_Deferred`), exactly as they were: on plain tables;
nothing depends on them (an FK on a parent's key, a view grouping by it);
not a replica identity index, not clustered on; in the default tablespace,
without storage parameters and without a comment (``ADD CONSTRAINT`` from
``pg_get_constraintdef`` would not bring those back)."""
