"""The UI's state and its background work, apart from any web framework.

Long work runs as ``oltpseed`` child processes (the very commands a user would
type), each in its own session, so a closed tab stops nothing and the CLI's
guardrails, signals and one-line errors apply unchanged. Quick reads (plan,
counts, preflight, a slot's retained WAL) call the same core functions the CLI
commands call. One :class:`Hub` holds the state every tab sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_oltpseed import cdc, db, validators
from pytest_oltpseed.config import Settings, describe, load_settings
from pytest_oltpseed.domains import select, tables_of
from pytest_oltpseed.errors import GuardrailRefused, OltpseedError, UsageError
from pytest_oltpseed.seed import seeder
from pytest_oltpseed.stream import pausing

SLOT = "oltpseed_ui"  # the UI's own slot and publication: never a user's
SAMPLE_S = 1.0  # how often a running stream's report is read (and written)
RATE_WINDOW_S = 3.0  # events/s over this window
MAX_SAMPLES = 300  # five minutes of chart at SAMPLE_S
SEED_LINE = "seed: "


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest_oltpseed", *args]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line.removeprefix("oltpseed: error: ").removeprefix("oltpseed: ")


@dataclasses.dataclass
class Child:
    """One running ``oltpseed`` command; its output is collected line by line."""

    name: str
    proc: subprocess.Popen[str]
    stdout: list[str] = dataclasses.field(default_factory=list)
    stderr: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def start(
        cls,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        on_stderr: Callable[[str], None] | None = None,
    ) -> Child:
        proc = subprocess.Popen(
            _cli(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
            start_new_session=True,  # the UI's Ctrl-C is relayed, not shared
        )
        child = cls(name, proc)
        threading.Thread(
            target=child._drain, args=(proc.stdout, child.stdout, None), daemon=True
        ).start()
        threading.Thread(
            target=child._drain,
            args=(proc.stderr, child.stderr, on_stderr),
            daemon=True,
        ).start()
        return child

    @staticmethod
    def _drain(pipe: Any, into: list[str], each: Callable[[str], None] | None) -> None:
        for line in pipe:
            into.append(line.rstrip("\n"))
            if each is not None:
                each(line.rstrip("\n"))

    def wait(self) -> int:
        code = self.proc.wait()
        time.sleep(0.05)  # let the drain threads take the last lines
        return code

    def interrupt(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGINT)

    def error(self) -> str:
        return _last_line("\n".join(self.stderr)) or f"{self.name} failed"


@dataclasses.dataclass
class SeedForm:
    domain: str = "all"
    profile: str = "SMALL"
    seed_random: int = 0
    custom: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> SeedForm:
        try:
            custom = {
                str(k): int(v)
                for k, v in (data.get("custom") or {}).items()
                if str(v).strip() != ""
            }
            form = cls(
                domain=str(data.get("domain") or "all"),
                profile=str(data.get("profile") or "SMALL").upper(),
                seed_random=int(data.get("seed_random") or 0),
                custom=custom,
            )
        except (TypeError, ValueError) as exc:
            raise UsageError(f"bad seed form: {exc}") from None
        if form.seed_random < 0 or any(n < 0 for n in custom.values()):
            raise UsageError("counts and the random seed must be 0 or more")
        return form

    def env(self) -> dict[str, str]:
        if self.profile != "CUSTOM":
            return {}
        return {f"SEED_{t.upper()}": str(n) for t, n in self.custom.items()}

    def args(self) -> list[str]:
        return [
            "--domain",
            self.domain,
            "--profile",
            self.profile,
            "--seed-random",
            str(self.seed_random),
        ]


@dataclasses.dataclass
class StreamForm:
    domain: str = "all"
    interval: float = 1.0
    jitter_ms: int = 400
    batch_size: int = 50
    rate: float | None = None
    duration: float | None = None
    weights: str = ""
    clients: int = 1
    cdc: bool = True

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> StreamForm:
        def number(key: str, kind: type, default: Any) -> Any:
            value = data.get(key)
            if value is None or str(value).strip() == "":
                return default
            result = kind(value)
            if result < 0:
                raise ValueError(f"{key} must be 0 or more")
            return result

        try:
            form = cls(
                domain=str(data.get("domain") or "all"),
                interval=number("interval", float, 1.0),
                jitter_ms=number("jitter_ms", int, 400),
                batch_size=number("batch_size", int, 50),
                rate=number("rate", float, None) or None,
                duration=number("duration", float, None) or None,
                weights=str(data.get("weights") or "").strip(),
                clients=number("clients", int, 1),
                cdc=bool(data.get("cdc", True)),
            )
        except (TypeError, ValueError) as exc:
            raise UsageError(f"bad stream form: {exc}") from None
        if form.batch_size < 1:
            raise UsageError("batch size must be 1 or more")
        if form.clients < 1:
            raise UsageError("clients must be 1 or more")
        return form

    def args(self, report: Path) -> list[str]:
        args = ["--domain", self.domain, "--interval", f"{self.interval:g}"]
        args += ["--jitter-ms", str(self.jitter_ms)]
        args += ["--batch-size", str(self.batch_size)]
        if self.rate:
            args += ["--rate", f"{self.rate:g}"]
        if self.duration:
            args += ["--duration", f"{self.duration:g}"]
        if self.weights:
            args += ["--weights", self.weights]
        if self.clients > 1:
            args += ["--clients", str(self.clients)]
        args += ["--report", str(report), "--changes", str(changes_of(report))]
        return [*args, "--progress", f"{SAMPLE_S:g}"]


def changes_of(report: Path) -> Path:
    """The changes file (``stream --changes``) written beside a run's report."""
    return report.with_suffix(".changes.jsonl")


class Hub:
    """Everything the page shows, and the one place that starts work.

    Methods raise :class:`OltpseedError` with one line; the routes show it.
    """

    def __init__(self, settings: Settings, conninfo: str, *, force: bool) -> None:
        self.settings = settings
        self.conninfo = conninfo
        self.force = force
        self.workdir = Path(tempfile.mkdtemp(prefix="oltpseed-ui-"))
        self._pause_path: Path | None = None  # the database's pause sentinel
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.seed: dict[str, Any] = {"status": "idle"}
        self.stream: dict[str, Any] = {"status": "idle", "samples": []}
        self.counts: dict[str, int | None] = {}
        self.check: dict[str, Any] | None = None
        self.preflight: list[dict[str, Any]] | None = None
        self.error = ""
        self.closing = False  # set on Ctrl-C: live feeds end, work is stopped
        self._children: dict[str, Child] = {}
        self._threads: list[threading.Thread] = []

    # -- what the page shows -----------------------------------------------------
    def guard(self) -> str | None:
        """Why writing is refused here (the CLI's own rule), or None."""
        return self.settings.refusal("write from the UI")

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": self.version,
                "target": describe(self.conninfo),
                "embedded": self.settings.connection.conninfo is None,
                "app_env": self.settings.app_env,
                "guard": self.guard(),
                "forced": self.settings.force and self.settings.production_like,
                "seed": self.seed,
                "stream": self.stream,
                "counts": self.counts,
                "check": self.check,
                "preflight": self.preflight,
                "error": self.error,
                # CUSTOM's fields: the tables SEED_<TABLE> can set, MEDIUM's counts
                "custom": {d.name: d.volumes["MEDIUM"] for d in select("all")},
            }

    def _touch(self) -> None:
        with self.lock:
            self.version += 1
            self.changed.notify_all()

    def close(self) -> None:
        """Let every live feed end now (the server is shutting down)."""
        with self.lock:
            self.closing = True
        self._touch()

    def wait_change(self, seen: int, timeout: float) -> int:
        with self.changed:
            if self.version == seen:
                self.changed.wait(timeout)
            return self.version

    def fail(self, message: str) -> None:
        with self.lock:
            self.error = message
        self._touch()

    # -- environment of the children --------------------------------------------
    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEED_")}
        for key in ("SEED_RANDOM", "SEED_AS_OF", "SEED_WORKERS"):
            if key in os.environ:
                env[key] = os.environ[key]
        env["DATABASE_URL"] = self.conninfo
        env["NO_COLOR"] = "1"
        if self.force:
            env["FORCE_SEED"] = "true"
        env.update(extra or {})
        return env

    def _writing(self) -> None:
        refused = self.guard()
        if refused is not None:
            raise GuardrailRefused(refused)

    def _busy(self) -> None:
        """One seed or stream at a time (a stream's slot and its report are one)."""
        if self.seed.get("status") == "running":
            raise OltpseedError("a seed is still running; wait for it")
        if self.stream.get("status") in ("starting", "running", "verifying"):
            raise OltpseedError("a stream is still running; stop it first")
        for child in self._children.values():
            if child.proc.poll() is None:
                raise OltpseedError(f"{child.name} is still running; wait or stop it")

    def _settings(self, form: SeedForm | None = None) -> Settings:
        env = self.env(form.env() if form else None)
        return load_settings(
            dsn=self.conninfo,
            force=self.force,
            seed_size=form.profile if form else None,
            seed_random=form.seed_random if form else None,
            env=env,
        )

    # -- quick reads: the core functions the CLI commands call ---------------------
    def plan(self, form: SeedForm) -> list[dict[str, Any]]:
        """``oltpseed seed --dry-run``'s table, as rows."""
        settings = self._settings(form)
        stages = seeder.plan(select(form.domain), settings.profile)
        rows = [
            {
                "table": s.table,
                "rows": s.count,
                "batch": s.batch_size,
                "mode": "upsert" if s.idempotent else "insert",
                "items": s.item_tables,
            }
            for s in stages
        ]
        with self.lock:
            self.seed = {
                **self.seed,
                "plan": rows,
                "warnings": list(settings.profile.warnings),
            }
        self._touch()
        return rows

    def refresh_counts(self, domain: str = "all") -> None:
        """``oltpseed counts``."""
        with db.connect(self.conninfo, self.settings, autocommit=True) as conn:
            found = db.table_counts(conn, tables_of(select(domain)))
        with self.lock:
            self.counts = found
        self._touch()

    def run_preflight(self, domain: str = "all") -> None:
        """``oltpseed cdc preflight`` for the UI's publication."""
        with db.connect(self.conninfo, self.settings, autocommit=True) as conn:
            checks = cdc.preflight(conn, tables_of(select(domain)), SLOT)
        with self.lock:
            self.preflight = [dataclasses.asdict(c) for c in checks]
        self._touch()

    def run_check(self, domain: str = "all") -> None:
        """``oltpseed check``: every rule, with its violations."""
        domains = select(domain)
        with db.connect(self.conninfo, self.settings) as conn:
            covered = validators.coverage(conn, domains, every=domain == "all")
            findings = (
                validators.check_database(conn, covered.domains)
                if covered.problem is None
                else []
            )
            conn.rollback()
        with self.lock:
            self.check = {
                "ok": covered.problem is None and all(f.ok for f in findings),
                "problem": covered.problem,
                "notes": list(covered.skipped),
                "rules": [{**dataclasses.asdict(f), "ok": f.ok} for f in findings],
            }
        self._touch()

    def _retained_wal(self) -> int | None:
        with db.connect(self.conninfo, self.settings, autocommit=True) as conn:
            return cdc.retained_wal(conn, SLOT)

    # -- long work ---------------------------------------------------------------
    def _background(self, name: str, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except OltpseedError as exc:
                self.fail(str(exc))
            except Exception as exc:  # one line on the page, never a traceback
                self.fail(f"{name}: {db.first_line(exc)}")

        thread = threading.Thread(target=run, name=f"ui-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def start_seed(self, form: SeedForm) -> None:
        with self.lock:
            self._writing()
            self._busy()
            plan = self.plan(form)
            self.error = ""
            self.check = None
            self.seed = {
                "status": "running",
                "form": dataclasses.asdict(form),
                "plan": plan,
                "stages": {row["table"]: 0 for row in plan},
                "started": time.time(),
            }
        self._touch()

        def progress(line: str) -> None:
            # the CLI's plain progress: "seed: TABLE DONE/COUNT rows"
            if not line.startswith(SEED_LINE):
                return
            table, _, numbers = line[len(SEED_LINE) :].partition(" ")
            done = numbers.split("/", 1)[0].replace(",", "")
            if done.isdigit():
                with self.lock:
                    self.seed["stages"][table] = int(done)
                self._touch()

        def work() -> None:
            child = Child.start(
                "seed",
                ["seed", *form.args()],
                self.env(form.env()),
                on_stderr=progress,
            )
            with self.lock:
                self._children["seed"] = child
            code = child.wait()
            with self.lock:
                self.seed["seconds"] = round(time.time() - self.seed["started"], 2)
                self.seed["status"] = "done" if code == 0 else "failed"
                if code != 0:
                    self.seed["error"] = child.error()
                    self.error = child.error()
            self._touch()
            self.refresh_counts(form.domain)
            if code == 0:
                self.run_check(form.domain)

        self._background("seed", work)

    def start_stream(self, form: StreamForm) -> None:
        with self.lock:
            self._writing()
            self._busy()
            report = self.workdir / f"stream-{int(time.time() * 1000)}.json"
            self.error = ""
            self.stream = {
                "status": "starting",
                "form": dataclasses.asdict(form),
                "report": str(report),
                "samples": [],
                "ledger": None,
                "summary": "",
                "verdict": None,
                "paused": False,
                "wal_bytes": None,
            }
        self._touch()
        self._background("stream", lambda: self._stream(form, report))

    def _stream(self, form: StreamForm, report: Path) -> None:
        env = self.env()
        if form.cdc:
            start = Child.start(
                "cdc start",
                [
                    "cdc",
                    "start",
                    "--domain",
                    form.domain,
                    "--slot",
                    SLOT,
                    "--publication",
                    SLOT,
                ],
                env,
            )
            with self.lock:
                self._children["cdc"] = start
            if start.wait() != 0:
                error = start.error()
                if "already exists" in error:  # left by a UI that was killed
                    error += (
                        f"; the UI's own: oltpseed cdc stop --slot {SLOT} "
                        f"--publication {SLOT}"
                    )
                self._set_stream(status="failed", error=error)
                self.fail(error)
                return
        child = Child.start("stream", ["stream", *form.args(report)], env)
        with self.lock:
            self._children["stream"] = child
        self._set_stream(status="running")
        started = time.monotonic()
        history: list[tuple[float, int]] = []
        while child.proc.poll() is None:
            time.sleep(SAMPLE_S)
            self._sample(report, form.cdc, started, history)
        code = child.wait()
        self._sample(report, form.cdc, started, history)
        ledger = _read(report)
        error = child.error() if code not in (0, 130) else ""
        self._set_stream(
            status="verifying" if form.cdc else ("done" if not error else "failed"),
            summary="\n".join(child.stdout),
            ledger=ledger,
            exit_code=code,
            paused=False,
            error=error,
        )
        if error:
            self.fail(error)
        if form.cdc:
            self._verify(form, report, ledger)
        self.refresh_counts(form.domain)

    def _verify(
        self, form: StreamForm, report: Path, ledger: dict[str, Any] | None
    ) -> None:
        """``oltpseed cdc verify --json``; it drops the UI's slot after."""
        args = ["cdc", "verify", "--report", str(report), "--domain", form.domain]
        if changes_of(report).exists():  # key by key as well as per table
            args += ["--changes", str(changes_of(report))]
        args += ["--slot", SLOT, "--publication", SLOT, "--json"]
        if ledger is None:  # nothing to reconcile: just release the WAL
            args = ["cdc", "stop", "--slot", SLOT, "--publication", SLOT]
        child = Child.start("cdc verify", args, self.env())
        with self.lock:
            self._children["cdc"] = child
        code = child.wait()
        verdict = None
        with contextlib.suppress(ValueError):
            verdict = json.loads("\n".join(child.stdout)) if ledger else None
        failed = code not in (0, 1) or (ledger is not None and verdict is None)
        self._set_stream(
            status="failed" if failed else "done",
            verdict=verdict,
            wal_bytes=None,
        )
        if failed:
            self.fail(child.error())

    def _sample(
        self,
        report: Path,
        with_slot: bool,
        started: float,
        history: list[tuple[float, int]],
    ) -> None:
        """One point of the charts, from the report the stream keeps writing.

        events/s is taken over the last RATE_WINDOW_S: the report is rewritten
        on the stream's own clock, so two reads in a row may see the same one.
        """
        document = _read(report)
        if document is None:
            return
        now = time.monotonic()
        committed = int(document["events"]["committed"])
        history.append((now, committed))
        while len(history) > 2 and now - history[1][0] >= RATE_WINDOW_S:
            history.pop(0)
        first_t, first_n = history[0]
        rate = (committed - first_n) / (now - first_t) if now > first_t else 0.0
        wal = None
        if with_slot:
            with contextlib.suppress(Exception):
                wal = self._retained_wal()
        ops = {
            op: sum(t[op] for t in document["tables"].values())
            for op in ("insert", "update", "delete")
        }
        point = {
            "t": round(now - started, 2),
            "events_per_s": round(rate, 1),
            "committed": committed,
            "latency": document["latency_ms"],
            "lag": document["lag_ms"],
            "ops": ops,
            "wal_bytes": wal,
        }
        with self.lock:
            samples = self.stream["samples"]
            samples.append(point)
            del samples[:-MAX_SAMPLES]
            self.stream["ledger"] = document
            self.stream["wal_bytes"] = wal
            self.stream["paused"] = self._sentinel().exists()
        self._touch()

    def _set_stream(self, **values: Any) -> None:
        with self.lock:
            self.stream.update(values)
        self._touch()

    def _sentinel(self) -> Path:
        """The pause sentinel ``oltpseed pause`` uses for the target database
        (``--pause-file``/``STREAM_PAUSE_FILE`` when set), found once."""
        explicit = self.settings.stream.pause_file
        if explicit is not None:
            return explicit
        if self._pause_path is None:
            with db.connect(self.conninfo, self.settings, autocommit=True) as conn:
                self._pause_path = pausing.database_sentinel(conn)
        return self._pause_path

    def pause(self) -> None:
        """``oltpseed pause``: the same sentinel every running stream obeys."""
        self._writing()
        pausing.pause(self._sentinel())
        self._set_stream(paused=True)

    def resume(self) -> None:
        """``oltpseed resume``."""
        pausing.resume(self._sentinel())
        self._set_stream(paused=False)

    def stop_stream(self) -> bool:
        """Stop the running stream as Ctrl-C would (SIGINT: it finishes the
        open batch, writes its report and prints its summary)."""
        with self.lock:
            child = self._children.get("stream")
        if child is None or child.proc.poll() is not None:
            return False
        if self.stream.get("paused"):
            self.resume()
        child.interrupt()
        return True

    def report_file(self, changes: bool = False) -> Path | None:
        """The last run's report (or, with ``changes``, its changes file)."""
        with self.lock:
            path = self.stream.get("report")
        if not path:
            return None
        found = changes_of(Path(path)) if changes else Path(path)
        return found if found.exists() else None

    def shutdown(self, say: Callable[[str], None], timeout: float = 30.0) -> None:
        """Ctrl-C on ``oltpseed ui``: stop a running stream like SIGINT, wait
        for its summary (and the CDC verdict), and print them."""
        if self.stop_stream():
            say("stopping the running stream (SIGINT)")
            deadline = time.monotonic() + timeout
            for thread in self._threads:
                thread.join(max(deadline - time.monotonic(), 0.1))
            with self.lock:
                summary, verdict = self.stream.get("summary"), self.stream["verdict"]
            if summary:
                say(summary)
            if verdict is not None:
                say(
                    "cdc verify: "
                    + (
                        "every committed change captured once"
                        if verdict["ok"]
                        else "DIFFERENCES"
                    )
                )
        for child in self._children.values():
            if child.proc.poll() is None:
                child.interrupt()
        reports = sorted(self.workdir.glob("*.json"))
        if reports:
            say(f"stream reports kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
