"""The page's seed and stream forms, parsed and turned into CLI options.

A form is checked here (one line, exit code 2 as a usage error) so the
child command never starts with options it would refuse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_oltpseed.errors import UsageError

SAMPLE_S = 1.0  # how often a running stream's report is read (and written)


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
