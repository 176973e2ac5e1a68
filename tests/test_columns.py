"""Column generators: one definition, the same rows per row or column-wise."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from pytest_oltpseed import validators
from pytest_oltpseed.data import columns
from pytest_oltpseed.data.factory import bind
from pytest_oltpseed.domains import schema, select
from pytest_oltpseed.domains.hospital import factories as h
from pytest_oltpseed.profiles import resolve
from pytest_oltpseed.seed import chunks, headers, seeder
from pytest_oltpseed.seed.seeder import Seeder, plan
from pytest_oltpseed.server.embedded import ServerInfo
from tests.conftest import scratch_database

np = pytest.importorskip("numpy")
HOSPITAL = ("pacientes", "medicos", "convenios", "pacientes_convenios", "consultas",
            "exames", "internacoes")  # fmt: skip
RETAIL = ("suppliers", "stores", "products", "clients", "product_entries",
          "product_entry_items", "internal_distributions",
          "internal_distribution_items", "sales", "sale_items")  # fmt: skip


def test_uniform_stream_is_the_same_in_python_and_numpy() -> None:
    assert columns.fast_enabled()
    key = columns.stream_key(0, "consultas", 3, "status", 0)
    many = columns.uniforms(key, 0, 1000)
    assert many.tolist() == [columns.uniform(key, i) for i in range(1000)]
    assert many.min() >= 0.0 and many.max() < 1.0


def test_uniforms_at_any_rows_equal_the_stream() -> None:
    key = columns.stream_key(0, "pacientes_convenios", "plan", 2, "accept")
    rows = np.array([0, 7, 3, 2**40, 999], dtype=np.int64)
    assert columns.uniforms_at(key, rows).tolist() == [
        columns.uniform(key, int(i)) for i in rows
    ]


@pytest.mark.parametrize(
    ("patients", "plans", "total"),
    [(2000, 12, 2500), (500, 2, 900), (300, 20, 5000), (1, 5, 3), (50, 7, 0)],
)
def test_memberships_plan_column_wise_equals_one_at_a_time(
    patients: int, plans: int, total: int
) -> None:
    """The convênio plan over arrays gives the very pairs of the per-patient
    loop (the slow path's), and keeps the rule: distinct plans, at most 3."""
    from collections import Counter

    from pytest_oltpseed.domains.hospital import seeding as memberships

    keys = memberships.keys(7, "pacientes_convenios")
    slow = memberships.deal_rows(patients, plans, total, keys)
    fast = memberships.deal_columns(patients, plans, total, keys)
    assert [list(p) for p in slow] == [p.tolist() for p in fast]
    pairs = list(zip(*slow, strict=True))
    cap = min(h.MAX_CONVENIOS, plans)
    assert len(pairs) == min(total, patients * cap)
    assert len(set(pairs)) == len(pairs)
    assert max(Counter(p for p, _ in pairs).values(), default=0) <= cap
    assert all(0 <= p < patients and 0 <= c < plans for p, c in pairs)
    if total == 2500:  # the shape: about a third hold none, some hold three
        held = Counter(Counter(p for p, _ in pairs).values())
        assert 0.2 < 1 - sum(held.values()) / patients < 0.5 and held[3] > 100


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


def _sums(dsn: str, tables: tuple[str, ...] = HOSPITAL) -> dict[str, str]:
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
            for t in tables
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
    monkeypatch.setattr(columns, "FAST_AT", 100)  # MEDIUM stages go column-wise
    rendered: list[str] = []
    real_columns = chunks.render_columns

    def spy(chunk: chunks.Chunk, *args: Any) -> chunks.Rendered:
        rendered.append(chunk.table if chunk.binary else f"text: {chunk.table}")
        return real_columns(chunk, *args)

    monkeypatch.setattr(chunks, "render_columns", spy)
    monkeypatch.setenv("OLTPSEED_FAST", "0")
    slow_forked = _seed(oltp_server, workers=2)  # one row at a time, 2 workers
    slow = _seed(oltp_server, workers=0)
    monkeypatch.setenv("OLTPSEED_FAST", "1")
    fast = _seed(oltp_server, workers=2)  # column-wise stages stay in process
    assert slow_forked == slow
    assert fast == slow  # binary COPY (the column-wise path) lands the same rows
    assert set(rendered) >= {  # every hospital table has a binary form
        "medicos",
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


def test_crm_over_arrays_equals_crm_one_by_one() -> None:
    """Each UF's numbers, the cycle-walk past 0 and the last index."""
    from pytest_oltpseed.data import brazil

    top = 10**6 * len(brazil.UFS)
    ns = np.concatenate([np.arange(0, 20_000), np.arange(top - 20_000, top)])
    ns = np.concatenate([ns, np.arange(0, top, 9_973)])
    assert brazil.crm_many(ns).tolist() == [brazil.crm(int(n)) for n in ns]
    assert all(brazil.is_valid_crm(v) for v in brazil.crm_many(ns[:1000]))
    with pytest.raises(ValueError, match="outside the CRM space"):
        brazil.crm_many(np.array([top]))


def _violations(dsn: str, domain: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        findings = validators.check_database(conn, select(domain))
    return [
        f"{f.rule}: {f.violations} (e.g. {f.example})" for f in findings if not f.ok
    ]


def _seed_retail(server: ServerInfo, workers: int, profile: str = "MEDIUM") -> Any:
    with scratch_database(server, "cols") as dsn:
        with psycopg.connect(dsn) as conn:
            schema.install(conn, select("retail"))
            conn.commit()
            Seeder(conn, workers=workers).run(plan(select("retail"), resolve(profile)))
        assert _violations(dsn, "retail") == []
        return _sums(dsn, RETAIL)


def test_retail_fast_path_equals_slow_path_with_and_without_workers(
    oltp_server: ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retail column-wise == one row at a time, in chunks small enough that the
    stock carries from chunk to chunk, with and without workers; two fresh
    databases seeded column-wise hold the same rows."""
    monkeypatch.setattr(seeder, "PARALLEL_AT", 100)  # products, clients fork
    monkeypatch.setattr(columns, "FAST_AT", 10)  # every stage column-wise
    monkeypatch.setattr(chunks, "CHUNK", 70)  # several chunks a stage
    flat: list[str] = []
    header_chunks: list[str] = []
    real_columns, real_render = chunks.render_columns, headers.render

    def spy(chunk: chunks.Chunk, *args: Any) -> chunks.Rendered:
        flat.append(chunk.table)
        return real_columns(chunk, *args)

    def spy_headers(plan: Any, chunk: chunks.Chunk, fast: bool) -> Any:
        header_chunks.append(f"{chunk.table}:{fast}")
        return real_render(plan, chunk, fast)

    monkeypatch.setattr(chunks, "render_columns", spy)
    monkeypatch.setattr(headers, "render", spy_headers)
    monkeypatch.setenv("OLTPSEED_FAST", "0")
    slow_forked = _seed_retail(oltp_server, workers=2)
    slow = _seed_retail(oltp_server, workers=0)
    assert flat == [] and all(c.endswith(":False") for c in header_chunks)
    monkeypatch.setenv("OLTPSEED_FAST", "1")
    fast = _seed_retail(oltp_server, workers=2)
    again = _seed_retail(oltp_server, workers=0)
    assert slow_forked == slow
    assert fast == slow
    assert again == fast
    assert set(flat) == {"suppliers", "stores", "products", "clients"}
    assert header_chunks.count("sales:True") == 2 * 5  # 300 sales, 70 a chunk
    assert {c.split(":")[0] for c in header_chunks} == {
        "product_entries",
        "internal_distributions",
        "sales",
    }


def test_retail_large_column_wise_is_clean_and_stocked(
    oltp_server: ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LARGE, every retail stage of 1,000+ rows column-wise: `check` is clean
    (stock, totals, SKUs, documents), the counts are the profile's, and items
    are picked from what is in stock, so few headers end cancelled."""
    monkeypatch.setattr(columns, "FAST_AT", 1_000)
    monkeypatch.setenv("OLTPSEED_FAST", "1")
    profile = resolve("LARGE")
    with scratch_database(oltp_server, "cols") as dsn:
        with psycopg.connect(dsn) as conn:
            schema.install(conn, select("retail"))
            conn.commit()
            Seeder(conn).run(plan(select("retail"), profile))
            counts = {
                t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[arg-type, index]
                for t in RETAIL
            }
            cancelled = {
                t: conn.execute(
                    f"SELECT avg((status = 'cancelled')::int) FROM {t}"  # type: ignore[arg-type]
                ).fetchone()[0]  # type: ignore[index]
                for t in ("internal_distributions", "sales")
            }
            clients = conn.execute(
                "SELECT count(*) FILTER (WHERE length(cpf_cnpj) = 18), count(*) "
                "FROM clients"
            ).fetchone()
        assert _violations(dsn, "retail") == []
    for table in ("suppliers", "stores", "products", "clients", "sales"):
        assert counts[table] == profile.count(table)
    assert 1 <= counts["sale_items"] / counts["sales"] <= 5
    # weights: 2% of transfers and 5% of sales cancelled; stock costs a little more
    assert cancelled["internal_distributions"] < 0.06, cancelled
    assert cancelled["sales"] < 0.10, cancelled
    assert clients is not None and 0.10 < clients[0] / clients[1] < 0.20


@pytest.mark.parametrize("chunks_of", [[40], [7, 13, 20]])
def test_stock_grants_column_wise_equal_the_greedy_loop(chunks_of: list[int]) -> None:
    """min(Q, S) - min(Q - want, S) per key == granting one item at a time,
    also when the stock carries over several chunks."""
    from pytest_oltpseed.domains.retail.seeding import Stock

    rng = np.random.default_rng(7)
    stock = [int(x) for x in rng.integers(1, 30, 12)]

    def rule(fast: bool) -> Stock:
        each = Stock()
        left = [*stock, 0]
        each.left = np.array(left, dtype=np.int64) if fast else left
        return each

    fast, slow = rule(True), rule(False)
    for size in chunks_of:
        keys = rng.integers(-1, 12, size)
        wanted = rng.integers(1, 9, size)
        got = fast.allocate(keys, wanted, True)
        assert got.tolist() == slow.allocate(keys.tolist(), wanted.tolist(), False)
        assert (got >= 0).all() and (got <= wanted).all()
    assert fast.left.tolist() == slow.left
    assert min(slow.left) >= 0


def test_cnpj_over_arrays_equals_cnpj_one_by_one() -> None:
    from pytest_oltpseed.data import brazil

    ns = np.concatenate([np.arange(0, 20_000), np.arange(10**8 - 1000, 10**8)])
    assert brazil.cnpj_many(ns).tolist() == [brazil.cnpj(int(n)) for n in ns]
    assert all(brazil.is_valid_cnpj(v) for v in brazil.cnpj_many(ns[:1000]))


def test_product_names_over_arrays_equal_names_one_by_one() -> None:
    """The catalogue's names as a column, product lines past the catalogue too."""
    from pytest_oltpseed.domains.retail.catalog import CAPACITY, names_many, product_at

    ns = np.concatenate(
        [
            np.arange(0, 3_000),
            np.random.default_rng(1).integers(0, 50 * CAPACITY, 3_000),
        ]
    )
    names = names_many(ns).tolist()
    assert names == [product_at(int(n))[1] for n in ns]
    assert any(" - linha " in name for name in names)


def test_retail_create_uses_the_same_declarations(database: str) -> None:
    """Per object, the retail generators give the rows the rules expect."""
    from pytest_oltpseed.data import brazil
    from pytest_oltpseed.domains.retail import factories as r

    with psycopg.connect(database) as conn:
        schema.install(conn, select("retail"))
        with bind(conn, seed=3):
            sale = r.Sale.create()
            product = r.Product.create()
            client = r.Client.create()
            entry = r.ProductEntry.create()
    assert sale["total"] == sum(i["subtotal"] for i in sale["items"])
    assert all(i["subtotal"] == i["quantity"] * i["unit_price"] for i in sale["items"])
    assert brazil.is_valid_sku(product["sku"], product["name"])
    assert product["price"] >= product["cost"] * Decimal("1.25") - Decimal("0.01")
    assert brazil.is_valid_cpf(client["cpf_cnpj"]) or brazil.is_valid_cnpj(
        client["cpf_cnpj"]
    )
    assert entry["invoice_number"].startswith("NF-")
    assert entry["total_cost"] == sum(
        i["quantity"] * i["unit_cost"] for i in entry["items"]
    )


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


def test_generated_domain_vocabulary_maps_arrays_as_it_maps_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every generator a generated domain declares: its column form equals its
    value form row for row, as the seeder's two paths use them (parent keys
    of a stage, combinations, unique values, an end after a start that may be
    NULL, a computed column, Decimals of any scale, arrays, uuids...)."""
    from pytest_oltpseed.data.factory import Context, Row, _Attrs
    from pytest_oltpseed.introspect import runtime
    from pytest_oltpseed.introspect import vocabulary as V
    from pytest_oltpseed.seed.chunks import copy_text

    assert columns.load_numpy()
    size, start, as_of = 3000, 700, datetime(2025, 1, 1)
    monkeypatch.setattr(runtime, "_STAGE_KEYS", {
        ("film", ("film_id",)): [(i,) for i in range(1, 401)],
        ("actor", ("actor_id",)): [(i,) for i in range(1, 21)],
        ("city", ("name", "uf")): [(f"c{i}", "SP") for i in range(5)],
        ("empty", ("id",)): [],
    })  # fmt: skip
    ranges = ((datetime(2022, 1, 1), datetime(2022, 2, 1)),
              (datetime(2022, 2, 1), datetime(2022, 3, 1)))  # fmt: skip
    gens: dict[str, columns.Gen] = {
        "film": V.parent("film", ("film_id",), 0.2),
        "film_id": V.key("film", "film", ("film_id",), 0, kind="int"),
        "pair": V.combination("d", "t.pair", (("film", ("film_id",)),
                                              ("actor", ("actor_id",)))),
        "pair_film": V.key("pair", "film", ("film_id",), 0, position=0, kind="int"),
        "pair_actor": V.key("pair", "actor", ("actor_id",), 0, position=1),
        "city": V.optional_parent("city", ("name", "uf"), 0.1),
        "city_uf": V.key("city", "city", ("name", "uf"), 1),
        "root": V.optional_parent("empty", ("id",)),
        "root_id": V.key("root", "empty", ("id",), 0, kind="int"),
        "starts": columns.Maybe(0.2, V.moment()),
        "ends": V.after("starts", "timestamp", True, V.moment()),
        "paid": V.moment(ranges),
        "day": V.day(ranges),
        "due": V.after("day", "date", False, V.day()),
        "born": V.birth_date(),
        "qty": columns.Maybe(0.1, columns.Number(1, 20)),
        "price": V.number(0.5, 99.99, 2),
        "total": V.computed(lambda qty, price: qty * price, ("qty", "int"),
                            ("price", "money")),
        "rate": V.number(-5, 5.5, 4),
        "later_rate": V.after("rate", "value", False, V.number(0, 1, 3)),
        "whole": V.number(0, 10**6, 0),
        "weight": columns.Maybe(0.3, V.number(0, 10, None)),
        "title": V.words(1, 4, 12), "body": V.text(), "code": V.code(3),
        "first": V.first_name(5), "full": V.full_name(), "mail": V.email(30),
        "phone": V.phone(), "town": V.city(), "uf": V.state(),
        "country": V.country(6), "street": V.street(), "district": V.district(),
        "cep": V.postal_code(), "url": V.url(), "doc": V.document(),
        "ip": V.inet(), "span": V.interval(), "clock": V.clock(),
        "blob": V.bytes_(), "terms": V.tsvector(), "guid": V.uuid(),
        "tags": columns.Maybe(0.1, V.array(V.words(1, 2))),
        "stamps": V.array(V.moment(), 1, 3),
        "flag": columns.Maybe(0.5, columns.Flag(0.5)),
        "rating": columns.Choice(("G", "PG", "R")),
        "nothing": V.null(),
        "serial": V.unique_int("d", "t.serial"),
        "at": V.unique_moment("d", "t.at", ranges),
        "since": V.unique_moment("d", "t.since"),
        "uid": V.unique_uuid("d", "t.uid"),
        "handle": V.unique_text("d", "t.handle", 14, V.email(None)),
        "short": V.unique_text("d", "t.short", 3, V.words()),  # packed base 36
    }  # fmt: skip
    helpers = {"film", "pair", "city", "root"}
    g = Context(None, seed=0, as_of=as_of, index_base=start)
    frame = columns.Frame(as_of, size, g.pools, start)
    keys = {n: [columns.stream_key("t", n, j) for j in range(gen.draws)]
            for n, gen in gens.items()}  # fmt: skip
    many = {}
    for name, gen in gens.items():
        us = [columns.uniforms(k, 0, size) for k in keys[name]]
        frame.columns[name] = gen.many(frame, us)
        if name not in helpers:
            texts = columns.column_text(gen.kind, frame.columns[name])
            many[name] = V.python_values(gen.kind, frame.columns[name])
            assert texts.count("\\N") == many[name].count(None), name
    ones: dict[str, list] = {name: [] for name in many}
    for i in range(size):
        row = Row()
        for name, gen in gens.items():
            us = [columns.uniform(k, i) for k in keys[name]]
            row[name] = gen.one(g, us, _Attrs(row))
            if name in ones:
                ones[name].append(row[name])
                copy_text(row[name])  # a value the row path can write
    for name, values in many.items():
        assert values == ones[name], name
    assert sorted(frame.used.items()) == sorted(g.local_indices())
    assert set(many["root_id"]) == {None} and len(set(many["short"])) == size
    assert all(e > s for s, e in zip(many["starts"], many["ends"], strict=True) if s)
    pairs = set(zip(many["pair_film"], many["pair_actor"], strict=True))
    assert len(pairs) == size  # distinct combinations of 400 films x 20 actors


def test_binary_copy_lands_what_text_copy_lands(database: str) -> None:
    """Every binary form against the text path, value for value: NULLs,
    accents and an emoji, dates and times before 1970 and before 2000, the
    ends of each integer type; an integer too large is one clear error."""
    from pytest_oltpseed.errors import OltpseedError

    with psycopg.connect(database) as conn:
        _binary_against_text(conn)
        with pytest.raises(OltpseedError, match="out of range for the int4 column"):
            binary_encode(["int4"], [np.array([2**31])], 1)


def binary_encode(*args: Any) -> bytes:
    from pytest_oltpseed.seed import binary

    return binary.encode(*args)


def _binary_against_text(conn: psycopg.Connection) -> None:
    from pytest_oltpseed.seed import binary

    obj = np.array
    table = [  # (column type, kind, values)
        ("bigint", "int", np.array([0, -1, 2**63 - 1, -(2**63)], dtype=np.int64)),
        ("integer", "int", obj([2**31 - 1, None, -(2**31), 7], dtype=object)),
        ("smallint", "int", np.array([2**15 - 1, -(2**15), 0, 1], dtype=np.int64)),
        (
            "timestamp",
            "timestamp",
            np.array([0, -86_400 * 400, columns.NULL_TIME, 1_733_000_000]),
        ),
        ("date", "date", obj([None, -1, 10_957, 20_000], dtype=object)),
        ("boolean", "bool", np.array([True, False, True, False])),
        ("text", "text", obj(["São João", None, "", "tab\tand \\ 🙂"], dtype=object)),
        ("varchar(20)", "text", np.array(["a", "bb", "ccc", "Ação"])),
    ]
    names = [f"c{i}" for i in range(len(table))]
    for copy in ("b", "t"):
        conn.execute(
            f"CREATE TEMP TABLE {copy} ("  # type: ignore[arg-type]
            + ", ".join(f"{n} {t}" for n, (t, _, _) in zip(names, table, strict=True))
            + ")"
        )
    forms = binary.forms(conn, "b", names, [k for _, k, _ in table])
    assert forms is not None
    data = binary.encode(forms, [v for _, _, v in table], 4)
    texts = [columns.column_text(k, v) for _, k, v in table]
    lines = "".join("\t".join(row) + "\n" for row in zip(*texts, strict=True))
    with conn.cursor().copy("COPY b FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(data)
    with conn.cursor().copy("COPY t FROM STDIN") as copy:
        copy.write(lines)
    landed = conn.execute("SELECT * FROM b ORDER BY c0").fetchall()
    assert landed == conn.execute("SELECT * FROM t ORDER BY c0").fetchall()
    assert len(landed) == 4 and "São João" in [r[6] for r in landed]
    # no binary form (numeric money, timestamptz): the stage copies text
    conn.execute("CREATE TEMP TABLE m (price numeric, at timestamptz)")
    assert binary.forms(conn, "m", ["price"], ["money"]) is None
    assert binary.forms(conn, "m", ["at"], ["timestamp"]) is None
