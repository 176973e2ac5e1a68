"""What the `oltpseed ui` page costs the stream: events/s with the page open
vs the same stream without the UI, side by side, alternating.

Without: ``oltpseed stream --interval 0 --duration S`` as a user runs it.
With: ``oltpseed ui`` started on the same database, the stream started from
its API with the same options, and the page open in headless Chromium (the
charts redrawing on every update); without Chromium, a server-sent-events
reader stands in for the page. Both read events/s from the stream's report.

    .venv/bin/python bench/ui.py            # --seconds 8 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runs import STEERING, fresh_database, stream

from pytest_oltpseed.server.embedded import EmbeddedServer


def _env(work: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(STEERING)}
    env["LOG_DIR"] = str(Path(work) / "logs")
    return env


@contextmanager
def ui_server(dsn: str, work: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_oltpseed", "ui"],
        env={**_env(work), "DATABASE_URL": dsn},
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("oltpseed ui: "):
        proc.kill()
        raise SystemExit("oltpseed ui did not start")
    try:
        yield line.split(": ", 1)[1].strip()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=10):
        pass


def _state(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "api/state", timeout=10) as response:
        return dict(json.load(response))


@contextmanager
def page(url: str) -> Iterator[str]:
    """The page open in headless Chromium, or an SSE reader without it."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        chromium = None
    if chromium and driver_path:
        profile = tempfile.mkdtemp(prefix="oltpseed-bench-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-quic", "--no-first-run", "--disable-sync",
                     "--disable-background-networking", "--disable-component-update",
                     f"--user-data-dir={profile}"):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        try:
            driver.get(url)
            yield "headless Chromium"
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
        return
    stop = threading.Event()

    def read() -> None:
        with urllib.request.urlopen(url + "api/events", timeout=30) as feed:
            while not stop.is_set() and feed.readline():
                pass

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield "an SSE reader"
    finally:
        stop.set()


def with_page(dsn: str, seconds: float) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as work, ui_server(dsn, work) as url:
        with page(url) as viewer:
            _post(url + "api/stream/start", {
                "interval": 0, "jitter_ms": 0, "batch_size": 50,
                "duration": seconds, "cdc": False,
            })  # fmt: skip
            time.sleep(seconds)
            while _state(url)["stream"]["status"] not in ("done", "failed"):
                time.sleep(0.2)
            ledger = _state(url)["stream"]["ledger"]
        return float(ledger["events_per_s"]), viewer


def without(dsn: str, seconds: float) -> float:
    report = stream(
        dsn, "--interval", "0", "--jitter-ms", "0", "--batch-size", "50",
        "--duration", f"{seconds:g}",
    )  # fmt: skip
    return float(report["events_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    info, _ = EmbeddedServer().start()
    dsn = fresh_database(info, "bench_ui", "all", "SMALL")
    plain: list[float] = []
    paged: list[float] = []
    viewer = ""
    for _ in range(args.repeat):
        plain.append(without(dsn, args.seconds))
        rate, viewer = with_page(dsn, args.seconds)
        paged.append(rate)
    a, b = statistics.median(plain), statistics.median(paged)
    print(f"stream --interval 0 --batch-size 50, {args.seconds:g}s runs, domain all")
    print(f"  without the UI:            {a:8,.0f} events/s  {plain}")
    print(f"  from the UI, page open ({viewer}): {b:8,.0f} events/s  {paged}")
    print(f"  difference: {(a - b) / a:+.1%} of the plain stream's rate")


if __name__ == "__main__":
    main()
