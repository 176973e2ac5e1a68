"""``oltpseed ui`` in a real headless Chromium (the distribution's package).

The page is served by a real ``oltpseed ui`` process on a database of the
session's server; the browser clicks what a user would click. Set
``OLTPSEED_UI_SHOTS=DIR`` to keep the screenshots (docs/img/ has them).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed.server.embedded import ServerInfo
from tests.conftest import run_cli, scratch_database

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = os.environ.get("OLTPSEED_UI_SHOTS")
needs_ui = pytest.mark.skipif(
    importlib.util.find_spec("starlette") is None
    or importlib.util.find_spec("uvicorn") is None,
    reason="the [ui] extra is not installed: pip install 'pytest-oltpseed[ui]'",
)


@dataclass
class Ui:
    proc: subprocess.Popen[str]
    url: str
    dsn: str

    def get(self, path: str) -> tuple[int, str]:
        return _request(self.url + path)

    def post(self, path: str, body: dict[str, object] | None = None) -> dict:
        code, text = _request(self.url + path, json.dumps(body or {}).encode())
        assert code == 200, text
        return json.loads(text)

    def state(self) -> dict:
        return json.loads(self.get("api/state")[1])


def _request(url: str, data: bytes | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, data=data, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def total_rows(dsn: str) -> int:
    """Every row of both domains now (what a paused stream must not change)."""
    from pytest_oltpseed.db import table_counts
    from pytest_oltpseed.domains import select, tables_of

    with psycopg.connect(dsn) as conn:
        counts = table_counts(conn, tables_of(select("all")))
    return sum(n or 0 for n in counts.values())


@contextlib.contextmanager
def serve(dsn: str, env: dict[str, str], cwd: Path, *args: str) -> Iterator[Ui]:
    """A running ``oltpseed ui`` on ``dsn``; SIGINT and a wait afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_oltpseed", "ui", *args],
        env={**env, "DATABASE_URL": dsn, "TMPDIR": str(cwd)},  # its reports
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("oltpseed ui: http://"), (line, proc.stderr)
        yield Ui(proc, line.split(": ", 1)[1].strip(), dsn)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll until ``condition()`` is truthy; its value."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # the page re-renders a table on every live update
            value = condition()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            "chromium and chromium-driver are not installed "
            "(apt-get install chromium chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="oltpseed-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1100,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shot(driver: object, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SHOTS) / name))  # type: ignore[attr-defined]


def by_id(driver: object, element_id: str):  # type: ignore[no-untyped-def]
    return driver.find_element("id", element_id)  # type: ignore[attr-defined]


def cell_texts(driver: object, table_id: str) -> dict[str, list[str]]:
    rows = by_id(driver, table_id).find_elements("css selector", "tbody tr")
    found = {}
    for row in rows:
        cells = [c.text for c in row.find_elements("css selector", "td")]
        if cells:
            found[cells[0] if table_id != "plan-table" else cells[1]] = cells
    return found


@needs_ui
def test_requests_without_the_token_are_refused(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    with serve(database, cli_env, tmp_path, "--host", "0.0.0.0") as ui:
        base = ui.url.rsplit("/", 2)[0]  # http://host:port
        assert _request(base + "/")[0] == 403
        assert _request(base + "/api/state")[0] == 403
        assert _request(base + "/not-the-token/api/state")[0] == 403
        assert _request(base + "/api/seed", b"{}")[0] == 403
        assert ui.get("api/state")[0] == 200
        assert "postgresql://" not in ui.state()["target"]
        ui.post("api/stream/start", {"weights": "nosuch=1", "cdc": False})
        error = wait_for(lambda: ui.state()["error"], what="the error line")
        assert ui.state()["stream"]["status"] == "failed"
        ui.proc.send_signal(signal.SIGINT)
        _, err = ui.proc.communicate(timeout=30)
    assert "warning: --host 0.0.0.0 is not loopback" in err
    assert "nosuch" in error and "\n" not in error and "Traceback" not in error
    assert "Traceback" not in err


def test_without_the_extra_one_line_tells_how_to_install(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "block" / "starlette"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('absent')\n")
    env = {**cli_env, "PYTHONPATH": str(tmp_path / "block")}
    result = run_cli("ui", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "oltpseed: error: the UI needs the [ui] extra: pip install "
        "'pytest-oltpseed[ui]' (starlette and uvicorn)"
    ]


@needs_ui
def test_seed_small_from_the_page_shows_counts_and_check(
    browser: object, database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from selenium.webdriver.support.ui import Select

    with serve(database, cli_env, tmp_path) as ui:
        browser.get(ui.url)  # type: ignore[attr-defined]
        Select(by_id(browser, "seed-profile")).select_by_visible_text("SMALL")
        by_id(browser, "plan-button").click()
        plan = wait_for(lambda: cell_texts(browser, "plan-table"), what="the plan")
        assert plan["pacientes"][2] == "200"
        by_id(browser, "seed-button").click()
        counts = wait_for(
            lambda: (c := cell_texts(browser, "counts-table")).get("pacientes") and c,
            timeout=60,
            what="the counts",
        )
        caption = wait_for(
            lambda: (
                by_id(browser, "check-table").get_attribute("data-ok")
                and by_id(browser, "check-caption").text
            ),
            what="the check",
        )
        [violated] = wait_for(  # a list, read whole between two re-renders
            lambda: [
                [
                    row.text
                    for row in by_id(browser, "check-table").find_elements(
                        "css selector", "tr.bad"
                    )
                ]
            ],
            what="the check rows",
        )
        shot(browser, "ui-seed.png")
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM pacientes").fetchone()
    assert counts["pacientes"][1] == f"{row[0]:,}" == "200"
    assert counts["medicos"][1] == "20"
    assert caption.startswith("Check: all ")
    assert violated == []  # no rule that holds is shown as violated
    assert plan["pacientes"][6] == ""  # a dry run wrote nothing


@needs_ui
def test_stream_charts_grow_pause_resume_stop_and_verify(
    browser: object,
    oltp_server: ServerInfo,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    with scratch_database(oltp_server) as dsn:
        seeded = run_cli(
            "seed", "--profile", "SMALL", env={**cli_env, "DATABASE_URL": dsn}
        )
        assert seeded.returncode == 0, seeded.stderr
        with serve(dsn, cli_env, tmp_path) as ui:
            browser.get(ui.url)  # type: ignore[attr-defined]
            for field, value in (("stream-interval", "0.2"), ("stream-jitter", "50")):
                by_id(browser, field).clear()
                by_id(browser, field).send_keys(value)
            by_id(browser, "start-button").click()

            def points(chart: str) -> int:
                return int(by_id(browser, chart).get_attribute("data-points") or 0)

            wait_for(lambda: points("chart-rate") >= 2, what="the events/s chart")
            first = ui.state()["stream"]["ledger"]["events"]["committed"]
            wait_for(lambda: points("chart-tables") > 0, what="per-table chart")
            wait_for(
                lambda: ui.state()["stream"]["ledger"]["events"]["committed"] > first,
                what="more committed events",
            )
            assert by_id(browser, "ledger-table").is_displayed()
            wait_for(lambda: ui.state()["stream"]["wal_bytes"], what="retained WAL")
            shot(browser, "ui-stream.png")

            by_id(browser, "pause-button").click()
            wait_for(lambda: "(paused)" in by_id(browser, "stream-status").text)
            time.sleep(1.0)  # the open batch lands, then nothing moves
            held = total_rows(dsn)  # the database: no report's delay
            time.sleep(1.2)
            assert total_rows(dsn) == held
            by_id(browser, "resume-button").click()
            wait_for(
                lambda: total_rows(dsn) > held,
                what="the stream to go on after resume",
            )
            first_tab = browser.current_window_handle  # type: ignore[attr-defined]
            browser.switch_to.new_window("tab")  # type: ignore[attr-defined]
            browser.get(ui.url)  # type: ignore[attr-defined]
            run = ui.state()["stream"]["ledger"]["run_id"]
            wait_for(lambda: run in by_id(browser, "stream-status").text)
            assert by_id(browser, "stream-interval").get_attribute("value") == "0.2"
            browser.close()  # type: ignore[attr-defined]
            browser.switch_to.window(first_tab)  # type: ignore[attr-defined]
            assert run in by_id(browser, "stream-status").text
            browser.get("about:blank")  # the tab closes; the stream goes on
            gone = ui.state()["stream"]["ledger"]["events"]["committed"]
            browser.get(ui.url)  # type: ignore[attr-defined]
            wait_for(
                lambda: (
                    ui.state()["stream"]["ledger"]["events"]["committed"] > gone
                    and points("chart-rate") > 0
                ),
                what="the stream to run on after the tab closed",
            )
            by_id(browser, "stop-button").click()
            wait_for(
                lambda: by_id(browser, "verdict-table").get_attribute("data-ok"),
                timeout=30,
                what="the verify verdict",
            )
            caption = by_id(browser, "verdict-caption").text
            summary = by_id(browser, "stream-summary").text
            browser.execute_script(  # type: ignore[attr-defined]
                "arguments[0].scrollIntoView()", by_id(browser, "stream-summary")
            )
            shot(browser, "ui-verdict.png")
            code, report = ui.get("api/report")
            changes_code, changes = ui.get("api/changes")
        with psycopg.connect(dsn) as conn:
            slots = conn.execute(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                ("oltpseed_ui",),
            ).fetchone()
    assert "every committed change captured once" in caption
    assert "key by key:" in caption and "each once" in caption  # --changes too
    assert summary.startswith("stream stopped:")
    assert code == 200 and json.loads(report)["exit"] == "stopped"
    # the changes file: one line per committed row change, as many as reported
    document = json.loads(report)
    lines = [json.loads(line) for line in changes.splitlines()]
    assert changes_code == 200 and lines
    assert {line["run"] for line in lines} == {document["run_id"]}
    assert len(lines) == sum(sum(ops.values()) for ops in document["tables"].values())
    assert slots == (0,)  # verify released the slot


@needs_ui
def test_app_env_prod_disables_writing_unless_forced(
    browser: object, database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "APP_ENV": "PROD"}
    with serve(database, env, tmp_path) as ui:
        browser.get(ui.url)  # type: ignore[attr-defined]
        guard = wait_for(lambda: by_id(browser, "guard").text, what="the guard")
        disabled = {
            b: not by_id(browser, b).is_enabled()
            for b in ("seed-button", "start-button", "stop-button", "pause-button")
        }
        assert by_id(browser, "plan-button").is_enabled()  # reading stays
        by_id(browser, "preflight-button").click()
        preflight = wait_for(
            lambda: cell_texts(browser, "preflight-table"), what="the preflight"
        )
        shot(browser, "ui-prod.png")
        code, body = _request(ui.url + "api/seed", b'{"profile": "SMALL"}')
    assert "APP_ENV=PROD is production-like" in guard
    assert all(disabled.values()), disabled
    assert preflight["wal_level = logical"][1] == "ok"
    assert code == 403 and "FORCE_SEED=true or pass --force" in body
    with serve(database, env, tmp_path, "--force") as forced:
        assert forced.state()["guard"] is None
        assert forced.state()["forced"] is True


@needs_ui
def test_ctrl_c_stops_the_stream_and_prints_its_summary(
    oltp_server: ServerInfo, cli_env: dict[str, str], tmp_path: Path
) -> None:
    with scratch_database(oltp_server) as dsn, serve(dsn, cli_env, tmp_path) as ui:
        ui.post("api/stream/start", {"interval": "0.2", "cdc": False})
        wait_for(
            lambda: (
                (ui.state()["stream"]["ledger"] or {})
                .get("events", {})
                .get("committed")
            ),
            timeout=30,
            what="committed events",
        )
        ui.proc.send_signal(signal.SIGINT)
        _, err = ui.proc.communicate(timeout=30)
    assert ui.proc.returncode == 0
    assert "stopping the running stream (SIGINT)" in err
    assert "stream stopped:" in err
    assert "Traceback" not in err


@needs_ui
def test_forms_map_onto_the_cli_options_and_custom_counts(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pytest_oltpseed.config import load_settings
    from pytest_oltpseed.errors import UsageError
    from pytest_oltpseed.ui import is_loopback
    from pytest_oltpseed.ui.jobs import Hub, SeedForm, StreamForm

    for key in list(os.environ):
        if key not in cli_env:
            monkeypatch.delenv(key)
    monkeypatch.setenv("OLTPSEED_CONFIG_DIR", cli_env["OLTPSEED_CONFIG_DIR"])
    form = SeedForm.parse(
        {"profile": "custom", "domain": "hospital", "custom": {"pacientes": "7"}}
    )
    assert form.env() == {"SEED_PACIENTES": "7"}
    hub = Hub(load_settings(), "host=127.0.0.1 dbname=x password=s3cret", force=False)
    plan = {row["table"]: row["rows"] for row in hub.plan(form)}
    assert plan["pacientes"] == 7 and plan["medicos"] == 200  # MEDIUM's otherwise
    assert "s3cret" not in json.dumps(hub.snapshot())
    stream = StreamForm.parse(
        {"interval": "0.5", "batch_size": "10", "rate": "", "weights": "sale=0",
         "clients": "2"}
    )  # fmt: skip
    assert stream.args(tmp_path / "r.json") == [
        "--domain", "all", "--interval", "0.5", "--jitter-ms", "400",
        "--batch-size", "10", "--weights", "sale=0", "--clients", "2",
        "--report", str(tmp_path / "r.json"),
        "--changes", str(tmp_path / "r.changes.jsonl"), "--progress", "1",
    ]  # fmt: skip
    with pytest.raises(UsageError, match="batch size"):
        StreamForm.parse({"batch_size": "0"})
    with pytest.raises(UsageError, match="clients"):
        StreamForm.parse({"clients": "0"})
    with pytest.raises(UsageError):
        SeedForm.parse({"seed_random": "-1"})
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
