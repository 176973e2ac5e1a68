"""Column generators: one definition, the same rows per row or column-wise."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from pytest_oltpseed.data import columns
from pytest_oltpseed.data.factory import bind
from pytest_oltpseed.domains import schema, select
from pytest_oltpseed.domains.hospital import factories as h
from pytest_oltpseed.profiles import resolve
from pytest_oltpseed.seed import chunks, seeder
from pytest_oltpseed.seed.seeder import Seeder, plan
from pytest_oltpseed.server.embedded import ServerInfo
from tests.conftest import scratch_database

np = pytest.importorskip("numpy")
HOSPITAL = ("pacientes", "medicos", "convenios", "pacientes_convenios", "consultas",
            "exames", "internacoes")  # fmt: skip


def test_uniform_stream_is_the_same_in_python_and_numpy() -> None:
    assert columns.fast_enabled()
    key = columns.stream_key(0, "consultas", 3, "status", 0)
    many = columns.uniforms(key, 0, 1000)
    assert many.tolist() == [columns.uniform(key, i) for i in range(1000)]
    assert many.min() >= 0.0 and many.max() < 1.0


def test_generators_map_arrays_as_they_map_values() -> None:
    """Each generator's column form equals its value form, draw for draw."""
    assert columns.load_numpy()
    frame = columns.Frame(datetime(2025, 1, 1), 2000, None)
    # patients registered before and after the as-of (a stream's patient): the
    # agendada bound is the patient's own now
    cadastros = [datetime(2024, 6, 1), datetime(2025, 1, 1), datetime(2025, 3, 1)]

    class Pool:
        @staticmethod
        def seconds(column: str) -> Any:
            assert column == "data_cadastro"
            return np.array([columns.to_seconds(c) for c in cadastros])

    frame.parents["paciente_id"] = Pool()
    frame.columns["paciente_id"] = np.arange(2000) % len(cadastros)
    us = [columns.uniforms(columns.stream_key("t", j), 0, 2000) for j in range(3)]
    weighted = columns.Weighted(h.STATUS_CONSULTA)
    status = weighted.many(frame, us)
    frame.columns["status"] = status
    gens = [
        weighted,
        columns.Choice(h.MOTIVOS_CONSULTA),
        columns.Maybe(0.3, columns.Weighted(h.RESULTADOS)),
        dict(h.Consulta._declarations())["data"].fn.cases["agendada"],
    ]

    class Ctx:
        as_of = datetime(2025, 1, 1)

        @staticmethod
        def parent(index: int, table: str) -> dict[str, datetime]:
            return {"data_cadastro": cadastros[index]}

    for gen in gens:
        many = gen.many(frame, us[: gen.draws])
        if gen.kind == "timestamp":
            many = [columns.to_moment(int(s)) for s in many]
        else:
            many = many.tolist()

        class Row:
            status = None
            paciente_id = 0

        ones = []
        for i in range(2000):
            Row.status, Row.paciente_id = status[i], i % len(cadastros)
            ones.append(gen.one(Ctx, [u[i] for u in us[: gen.draws]], Row))
        assert many == ones, gen


def test_per_object_create_uses_the_same_declaration(database: str) -> None:
    """create() draws from the context's random stream through the same Gen."""
    with psycopg.connect(database) as conn:
        schema.install(conn, select("hospital"))
        with bind(conn, seed=0) as ctx:
            exam = h.Exame.create()
            patient = ctx.parent(exam["paciente_id"], "pacientes")
        assert exam["tipo_exame"] in h.TIPOS_EXAME
        assert exam["data"] >= patient["data_cadastro"]
        assert exam["data"] >= ctx.as_of - h.HISTORY - timedelta(seconds=1)


def _sums(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as c:
        return {
            t: hashlib.sha256(
                repr(
                    c.execute(
                        f"SELECT to_jsonb(t) - 'created_at' - 'updated_at' FROM {t} t "
                        "ORDER BY id"  # type: ignore[arg-type]
                    ).fetchall()
                ).encode()
            ).hexdigest()
            for t in HOSPITAL
        }


def _seed(server: ServerInfo, workers: int) -> dict[str, str]:
    with scratch_database(server, "cols") as dsn:
        with psycopg.connect(dsn) as conn:
            schema.install(conn, select("hospital"))
            conn.commit()
            Seeder(conn, workers=workers).run(
                plan(select("hospital"), resolve("MEDIUM"))
            )
        return _sums(dsn)


def test_fast_path_equals_slow_path_with_and_without_workers(
    oltp_server: ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Column-wise == one row at a time, in this process or in two workers."""
    monkeypatch.setattr(seeder, "PARALLEL_AT", 1_000)  # MEDIUM stages fork
    monkeypatch.setattr(columns, "FAST_AT", 1_000)  # MEDIUM stages go column-wise
    rendered: list[str] = []
    real_columns = chunks.render_columns

    def spy(chunk: chunks.Chunk, *args: Any) -> chunks.Rendered:
        rendered.append(chunk.table)
        return real_columns(chunk, *args)

    monkeypatch.setattr(chunks, "render_columns", spy)
    monkeypatch.setenv("OLTPSEED_FAST", "0")
    slow_forked = _seed(oltp_server, workers=2)  # one row at a time, 2 workers
    slow = _seed(oltp_server, workers=0)
    monkeypatch.setenv("OLTPSEED_FAST", "1")
    fast = _seed(oltp_server, workers=2)  # column-wise stages stay in process
    assert slow_forked == slow
    assert fast == slow
    assert set(rendered) >= {
        "pacientes",
        "pacientes_convenios",
        "consultas",
        "exames",
        "internacoes",
    }


def test_cpf_over_arrays_equals_cpf_one_by_one() -> None:
    """Check digits and the cycle-walk over a column match :func:`brazil.cpf`."""
    from pytest_oltpseed.data import brazil

    ns = np.concatenate([np.arange(0, 50_000), np.arange(10**9 - 1000, 10**9)])
    assert brazil.cpf_many(ns).tolist() == [brazil.cpf(int(n)) for n in ns]
    assert all(brazil.is_valid_cpf(v) for v in brazil.cpf_many(ns[:1000]))


def test_column_text_escapes_values_and_keeps_nulls() -> None:
    """Text columns are checked for escapes in one pass; a column with both
    nulls and a value to escape keeps its nulls as nulls (``\\N``), and a
    value that is literally backslash-N is escaped, not taken for a null."""
    if not columns.load_numpy():
        pytest.skip("NumPy (extra 'fast') not installed")
    np = columns.np
    plain = np.array(["Ana", "Rua A, 12", "Bia"], dtype=object)
    assert columns.column_text("text", plain) == ["Ana", "Rua A, 12", "Bia"]
    mixed = np.array([None, "a\tb", "\\N", "ok"], dtype=object)
    assert columns.column_text("text", mixed) == ["\\N", "a\\tb", "\\\\N", "ok"]
    nulls = np.array([None, "x"], dtype=object)
    assert columns.column_text("text", nulls) == ["\\N", "x"]
