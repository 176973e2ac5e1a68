"""What factory_boy users expect: traits, ``__`` overrides, ``build()`` with no
database, pytest-factoryboy-style ``register`` fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from decimal import Decimal

import psycopg
import pytest

from pytest_oltpseed import validators
from pytest_oltpseed.data.factory import (
    Col,
    FieldError,
    Trait,
    bind,
    factory_for,
)
from pytest_oltpseed.domains import select
from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.server.embedded import ServerInfo

pytestmark = pytest.mark.seed_profile("SMALL")


def _failures(conn: psycopg.Connection) -> list[object]:
    return [f for f in validators.check_database(conn, select("all")) if not f.ok]


# -- traits --------------------------------------------------------------------
def test_traits_on_every_path(
    oltp_conn: psycopg.Connection, oltp_factories: object
) -> None:
    f = oltp_factories
    consulta = f.Consulta.create(cancelada=True)  # type: ignore[attr-defined]
    assert consulta.status == "cancelada"
    assert f.Consulta.build(faltou=True).status == "faltou"  # type: ignore[attr-defined]
    batch = f.Consulta.create_batch(50, realizada=True)  # type: ignore[attr-defined]
    assert {row.status for row in batch} == {"realizada"}
    # the COPY path follows the trait's status into the date rule: all past
    assert all(row.data <= row.created_at.replace(tzinfo=None) for row in batch)
    stays = f.Internacao.create_batch(30, aberta=True)  # type: ignore[attr-defined]
    assert {row.data_saida for row in stays} == {None}
    closed = f.Internacao.create(com_alta=True)  # type: ignore[attr-defined]
    assert closed.data_saida is not None and closed.data_saida >= closed.data_entrada
    assert _failures(oltp_conn) == []


def test_a_keyword_wins_over_a_trait_and_parent_fields_combine(
    oltp_conn: psycopg.Connection, oltp_factories: object
) -> None:
    f = oltp_factories
    row = f.Consulta.create(  # type: ignore[attr-defined]
        cancelada=True, status="realizada", paciente__nome="Ana Trait"
    )
    assert row.status == "realizada"
    name = oltp_conn.execute(
        "SELECT nome FROM pacientes WHERE id = %s", (row.paciente_id,)
    ).fetchone()
    assert name == ("Ana Trait",)
    assert f.Consulta.create(cancelada=False).status in {  # type: ignore[attr-defined]
        "agendada", "realizada", "cancelada", "faltou"
    }  # fmt: skip


@pytest.mark.parametrize("n", [1, 3, 5])
def test_sale_with_n_items_keeps_its_total(
    oltp_conn: psycopg.Connection, oltp_factories: object, n: int
) -> None:
    f = oltp_factories
    sale = f.Sale.create(item_count=n, cancelled=True)  # type: ignore[attr-defined]
    assert sale.status == "cancelled" and len(sale["items"]) == n
    stored = oltp_conn.execute(
        "SELECT s.total, count(i.id), sum(i.subtotal) FROM sales s "
        "JOIN sale_items i ON i.sale_id = s.id WHERE s.id = %s GROUP BY s.total",
        (sale.id,),
    ).fetchone()
    assert stored == (sale.total, n, sale.total)
    sales = f.Sale.create_batch(3, item_count=n)  # type: ignore[attr-defined]
    assert [len(s["items"]) for s in sales] == [n] * 3
    assert _failures(oltp_conn) == []


def test_trait_declared_by_a_suite_and_its_errors() -> None:
    consultas = factory_for("consultas")

    class Consulta2(consultas):  # type: ignore[misc, valid-type]
        class Params:
            tarde = Trait(cancelada=True, motivo=Col(lambda g, r: "Retorno tardio"))

    assert factory_for("consultas") is consultas  # a subclass replaces nothing
    with bind(None, seed=4) as ctx:
        built = Consulta2.build(tarde=True)
        direct = Consulta2.make_row(ctx, overrides=Consulta2.normalize({"tarde": 1}))
        for row in (built, direct):  # factory_boy's path and the COPY path
            assert (row.status, row.motivo) == ("cancelada", "Retorno tardio")
        with pytest.raises(FieldError, match="no field 'tade'"):
            Consulta2.build(tade=True)

    import factory

    class Wrong(consultas):  # type: ignore[misc, valid-type]
        class Params:
            cedo = factory.Trait(status="agendada")

    with bind(None), pytest.raises(OltpseedError, match=r"not factory\.Trait"):
        Wrong.build(cedo=True)


def test_item_count_is_checked() -> None:
    with bind(None), pytest.raises(FieldError, match="item_count"):
        factory_for("sales").build(item_count=-1)


# -- build() with no database ------------------------------------------------------
OFFLINE = """
import sys
from pytest_oltpseed.data.factory import Ref, all_factories, factory_for

cpfs = set()
for name, f in sorted(all_factories().items()):
    if f._domain not in {domains!r}:
        continue
    rows = f.build_batch(3) + [f.build()]
    for row in rows:
        for value in row.values():
            if isinstance(value, Ref):
                assert "id" not in value.row, (name, value)  # built, not inserted
Paciente = factory_for("pacientes")
cpfs = [Paciente.build().cpf for _ in range(500)]
cpfs += [factory_for("consultas").build().paciente_id.row["cpf"] for _ in range(500)]
assert len(set(cpfs)) == 1000, "CPFs repeat"
consulta = factory_for("consultas").build(cancelada=True, paciente__nome="Ana")
assert consulta.status == "cancelada"
assert consulta.paciente_id.row["nome"] == "Ana"
try:
    Paciente.create()
except Exception as exc:
    print("create:", exc)
print("built", len(cpfs))
"""


def _unreachable_env() -> dict[str, str]:
    """No server anywhere: every connection setting points at nothing."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "DATABASE_URL", "OLTPSEED_", "SEED_"))
    }
    env.update(
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        PGHOST="/nonexistent",
        PGPORT="1",
    )
    return env


def test_build_needs_no_server(tmp_path: os.PathLike[str]) -> None:
    script = OFFLINE.format(domains=["hospital", "retail", "cdclab"])
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=_unreachable_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "built 1000" in done.stdout
    assert "create: no data context bound" in done.stdout


def test_built_rows_insert_later(oltp_conn: psycopg.Connection) -> None:
    """Offline identifiers sit above the seeder's: a built graph inserts cleanly."""
    consulta = factory_for("consultas").build()
    patient = consulta.paciente_id.row
    assert "id" not in patient
    with bind(oltp_conn) as ctx:
        factory_for("consultas").write(ctx, consulta)
    assert consulta.id and consulta.paciente_id == patient["id"]
    assert _failures(oltp_conn) == []


def test_built_sale_total_matches_items() -> None:
    sale = factory_for("sales").build(item_count=4)
    assert sale.total == sum((i["subtotal"] for i in sale["items"]), Decimal("0"))


# -- register() -------------------------------------------------------------------
REGISTER_CONFTEST = """
from pytest_oltpseed.data.factory import Col, Trait, factory_for
from pytest_oltpseed.plugin import register


class MyPacienteFactory(factory_for("pacientes")):
    nome = Col(lambda g, r: "Paciente " + g.choice(g.pools.first_names))


register(MyPacienteFactory)
register(MyPacienteFactory, _name="outro_paciente", nome="Outro")


@register
class MinhaConsultaFactory(factory_for("consultas")):
    class Params:
        remarcada = Trait(agendada=True, motivo="Retorno")
"""

REGISTER_SUITE = """
import pytest


def test_factory_fixture(my_paciente_factory, oltp_conn):
    row = my_paciente_factory(nome="Ana")
    assert row.nome == "Ana" and row.id
    batch = my_paciente_factory.create_batch(20)
    assert all(r.nome.startswith("Paciente ") for r in batch)
    found = oltp_conn.execute(
        "SELECT count(*) FROM pacientes WHERE id = ANY(%s)", ([r.id for r in batch],)
    ).fetchone()[0]
    assert found == 20


def test_model_fixture(my_paciente, outro_paciente, oltp_conn):
    assert my_paciente.nome.startswith("Paciente ")
    assert outro_paciente.nome == "Outro"
    assert oltp_conn.execute(
        "SELECT nome FROM pacientes WHERE id = %s", (my_paciente.id,)
    ).fetchone()[0] == my_paciente.nome


@pytest.mark.parametrize("my_paciente__nome", ["Bia"])
def test_attribute_fixture(my_paciente):
    assert my_paciente.nome == "Bia"


@pytest.mark.parametrize("minha_consulta__remarcada", [True])
def test_trait_through_a_fixture(minha_consulta, my_paciente_factory):
    assert (minha_consulta.status, minha_consulta.motivo) == ("agendada", "Retorno")


def test_changes_vanish(oltp_conn):
    assert oltp_conn.execute(
        "SELECT count(*) FROM pacientes WHERE nome IN ('Ana', 'Bia', 'Outro')"
    ).fetchone()[0] == 0
"""


def _run_suite(
    pytester: pytest.Pytester, server: ServerInfo, conftest: str, **files: str
) -> pytest.RunResult:
    """A downstream suite on SMALL hospital, in a subprocess on our server."""
    pytester.makeconftest(textwrap.dedent(conftest))
    pytester.makepyfile(**files)
    return pytester.runpytest_subprocess(
        "--seed-profile=SMALL",
        "--seed-domain=hospital",
        f"--seed-dsn={server.dsn('postgres')}",
        "-p",
        "no:randomly",
    )


def test_register_gives_pytest_factoryboy_fixtures(
    pytester: pytest.Pytester, clean_env: None, oltp_server: ServerInfo
) -> None:
    result = _run_suite(
        pytester, oltp_server, REGISTER_CONFTEST, test_registered=REGISTER_SUITE
    )
    result.assert_outcomes(passed=5)


# Parents registered in the conftest: the consulta's (registered first, linked
# once its parent comes) and a child registered in a test module below.
CHAIN_CONFTEST = """
from pytest_oltpseed.data.factory import Parent, factory_for
from pytest_oltpseed.plugin import register


class ConsultaFactory(factory_for("consultas")):
    pass


class PacienteFactory(factory_for("pacientes")):
    pass


class TutorFactory(factory_for("pacientes")):
    tutor_id = Parent("pacientes")  # self-referencing: never its own fixture


register(ConsultaFactory)
register(ConsultaFactory, _name="consulta_avulsa", paciente__nome="Avulsa")
register(PacienteFactory)
register(TutorFactory, _name="tutor")
"""

CHAIN_SUITE = """
import pytest
from pytest_oltpseed.data.factory import factory_for
from pytest_oltpseed.fixtures.register import NOTSET
from pytest_oltpseed.plugin import register


@register
class ExameFactory(factory_for("exames")):  # its parent is the conftest's
    pass


def _nome(conn, paciente_id):
    return conn.execute(
        "SELECT nome FROM pacientes WHERE id = %s", (paciente_id,)
    ).fetchone()[0]


def test_the_child_uses_the_parent_fixture(
    consulta, exame, paciente, consulta__medico_id, oltp_conn
):
    assert consulta.paciente_id == paciente.id == exame.paciente_id
    assert _nome(oltp_conn, consulta.paciente_id) == paciente.nome
    # medico is registered nowhere: the factory picks one, as create() does
    assert consulta__medico_id is NOTSET
    assert consulta.medico_id


@pytest.mark.parametrize("paciente__nome", ["Ana Chain"])
def test_a_parent_field_flows_into_the_child(consulta, oltp_conn):
    assert _nome(oltp_conn, consulta.paciente_id) == "Ana Chain"


@pytest.mark.parametrize("consulta__paciente_id", [NOTSET])
def test_the_child_attribute_still_wins(consulta, paciente):
    # parametrized away from the parent fixture: the factory decides again
    assert consulta.paciente_id != paciente.id


def test_keywords_of_register_pin_the_parent(consulta_avulsa, paciente, oltp_conn):
    assert consulta_avulsa.paciente_id != paciente.id
    assert _nome(oltp_conn, consulta_avulsa.paciente_id) == "Avulsa"


def test_a_self_reference_is_left_to_the_factory(tutor__tutor_id):
    assert tutor__tutor_id is NOTSET


def test_batches_with_traits_and_parent_fields_pass_check(oltp_database):
    import subprocess
    import sys
    from pytest_oltpseed.data.factory import bind

    with oltp_database.connect() as conn, bind(conn):
        # few rows in one state: the status mixes `check` measures still hold
        factory_for("consultas").create_batch(500)
        rows = factory_for("consultas").create_batch(10, cancelada=True)
        assert {row.status for row in rows} == {"cancelada"}
        ana = factory_for("consultas").create_batch(20, paciente__nome="Ana Lote")
        stays = factory_for("internacoes").create_batch(10, aberta=True)
        assert {row.data_saida for row in stays} == {None}
        factory_for("exames").create_batch(500)
        assert conn.execute(
            "SELECT count(DISTINCT c.paciente_id) FROM consultas c "
            "JOIN pacientes p ON p.id = c.paciente_id "
            "WHERE c.id = ANY(%s) AND p.nome = 'Ana Lote'",
            ([row.id for row in ana],),
        ).fetchone()[0] == 20  # each row its own new parent
        conn.commit()
    done = subprocess.run(
        [sys.executable, "-m", "pytest_oltpseed", "check", "--domain", "hospital",
         "--dsn", oltp_database.dsn],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
"""

CHAIN_OVERRIDE = """
import pytest


@pytest.fixture
def paciente(paciente_factory):
    return paciente_factory(nome="Zeca Override")


def test_an_overridden_parent_flows_into_the_child(consulta, paciente, oltp_conn):
    assert consulta.paciente_id == paciente.id
    assert oltp_conn.execute(
        "SELECT nome FROM pacientes WHERE id = %s", (consulta.paciente_id,)
    ).fetchone()[0] == "Zeca Override"
"""


def test_register_chains_registered_parents_and_factories_work_downstream(
    pytester: pytest.Pytester, clean_env: None, oltp_server: ServerInfo
) -> None:
    result = _run_suite(
        pytester,
        oltp_server,
        CHAIN_CONFTEST,
        test_chain=CHAIN_SUITE,
        test_override=CHAIN_OVERRIDE,
    )
    result.assert_outcomes(passed=7)


def test_register_refuses_what_it_cannot_bind() -> None:
    from pytest_oltpseed.plugin import register

    with pytest.raises(TypeError, match="SQLFactory subclass"):
        register(dict)  # type: ignore[arg-type]
    with pytest.raises(FieldError, match="no field 'nmoe'"):
        register(factory_for("pacientes"), _name="x", nmoe="Ana")
