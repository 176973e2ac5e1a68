"""Settings: where each value comes from, validation, and the guardrails.

Precedence (DESIGN.md): command-line flag > environment > ``config/.env`` >
``config/settings.toml`` > built-in default. Every invalid value raises
:class:`~pytest_oltpseed.errors.ConfigError` naming the variable, its source
and what is allowed, so entry points can print one line and exit 2.
"""

from __future__ import annotations

import io
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from dotenv import dotenv_values
from dotenv.parser import parse_stream
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pytest_oltpseed.errors import ConfigError, GuardrailRefused, UsageError
from pytest_oltpseed.profiles import (
    DEFAULT_AS_OF,
    DEFAULT_PROFILE,
    PROFILE_NAMES,
    Profile,
    resolve,
)

CONFIG_DIR_ENV = "OLTPSEED_CONFIG_DIR"
PRODUCTION_LIKE = frozenset({"STAGING", "RENDER", "PROD"})
APP_ENVS = ("DEV", "TEST", "STAGING", "RENDER", "PROD")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ROTATE_WHEN = ("S", "M", "H", "D", "MIDNIGHT", "W0", "W1", "W2", "W3", "W4", "W5", "W6")
PG_KEYS = ("PG_HOST", "PG_PORT", "PG_USER", "PG_PASSWORD", "PG_DATABASE")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

# Environment name -> (settings.toml section, key). Names absent here are read
# from the environment and config/.env only (the guardrail switches, on purpose:
# a committed settings.toml must not be able to disarm them).
TOML_KEYS: dict[str, tuple[str, str]] = {
    "DATABASE_URL": ("db", "dsn"),
    "PG_HOST": ("db", "host"),
    "PG_PORT": ("db", "port"),
    "PG_USER": ("db", "user"),
    "PG_PASSWORD": ("db", "password"),
    "PG_DATABASE": ("db", "database"),
    "PG_SEARCH_PATH": ("db", "search_path"),
    "PG_CONNECT_TIMEOUT": ("db", "connect_timeout"),
    "PG_APPLICATION_NAME": ("db", "application_name"),
    "STREAM_INTERVAL_SECONDS": ("stream", "interval_seconds"),
    "BATCH_SIZE": ("stream", "batch_size"),
    "MAX_JITTER_MS": ("stream", "max_jitter_ms"),
    "STREAM_FAIL_FAST_ON_CRITICAL": ("stream", "fail_fast_on_critical"),
    "STREAM_RECONNECT_BASE_SECONDS": ("stream", "reconnect_base_seconds"),
    "STREAM_RECONNECT_MAX_SECONDS": ("stream", "reconnect_max_seconds"),
    "STREAM_RECONNECT_ATTEMPTS": ("stream", "reconnect_attempts"),
    "STREAM_PROGRESS_SECONDS": ("stream", "progress_seconds"),
    "STREAM_CLIENTS": ("stream", "clients"),
    "STREAM_PAUSE_FILE": ("stream", "pause_file"),
    "STREAM_WEIGHTS": ("stream", "weights"),
    "SEED_SIZE": ("seed", "size"),
    "SEED_RANDOM": ("seed", "random"),
    "SEED_AS_OF": ("seed", "as_of"),
    "SEED_WORKERS": ("seed", "workers"),
    "LOG_LEVEL": ("logging", "level"),
    "LOG_DIR": ("logging", "directory"),
    "LOG_ROTATE_WHEN": ("logging", "rotate_when"),
    "LOG_BACKUP_COUNT": ("logging", "backup_count"),
}


@dataclass(frozen=True)
class Value:
    """A raw setting and where it came from (for error messages)."""

    raw: Any
    name: str
    source: str


@dataclass(frozen=True)
class Sources:
    """The layered configuration sources, highest precedence first."""

    env: Mapping[str, str]
    dotenv: Mapping[str, str]
    toml: Mapping[str, Any]
    config_dir: Path

    @classmethod
    def load(
        cls, config_dir: Path | None = None, env: Mapping[str, str] | None = None
    ) -> Sources:
        env = dict(os.environ if env is None else env)
        directory = Path(config_dir or env.get(CONFIG_DIR_ENV) or "config")
        return cls(
            env=env,
            dotenv=_read_dotenv(directory / ".env"),
            toml=_read_toml(directory / "settings.toml"),
            config_dir=directory,
        )

    def levels(self) -> list[tuple[str, Mapping[str, Any]]]:
        """(label, mapping keyed by environment name), highest precedence first."""
        flat: dict[str, Any] = {}
        for name, (section, key) in TOML_KEYS.items():
            table = self.toml.get(section)
            if isinstance(table, Mapping) and key in table:
                flat[name] = table[key]
        return [
            ("environment", self.env),
            (str(self.config_dir / ".env"), self.dotenv),
            (str(self.config_dir / "settings.toml"), flat),
        ]

    def get(self, name: str) -> Value | None:
        for label, mapping in self.levels():
            if name in mapping:
                shown = name
                if label.endswith("settings.toml"):
                    section, key = TOML_KEYS[name]
                    shown = f"[{section}] {key}"
                return Value(mapping[name], shown, label)
        return None


def _exists(path: Path) -> bool:
    """Whether a config file is there; an unreadable directory is one line."""
    try:
        return path.exists()
    except OSError as exc:
        raise UsageError(
            f"cannot read {path.parent}: {exc.strerror or exc} "
            f"(fix its permissions or set {CONFIG_DIR_ENV})"
        ) from None


def _read_dotenv(path: Path) -> dict[str, str]:
    """``config/.env``; a line python-dotenv cannot parse is an error (exit 2).

    python-dotenv itself only logs such a line and goes on without it, which
    silently drops a setting (a password, a guardrail switch). The line number
    is named, not its text: it may hold a secret.
    """
    if not _exists(path) or path.is_dir():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise UsageError(
                f"{path} line {binding.original.line}: cannot parse it "
                "(expected NAME=value; quote values with spaces or #)"
            )
    values = dotenv_values(stream=io.StringIO(text))
    return {k: v for k, v in values.items() if v is not None}


def _read_toml(path: Path) -> dict[str, Any]:
    if not _exists(path):
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"cannot parse {path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class Connection:
    """Where to connect: a conninfo string, or ``None`` for the embedded server."""

    conninfo: str | None
    source: str
    note: str = ""
    """One line for the user when defaults filled in parts of ``PG_*``."""

    @property
    def embedded(self) -> bool:
        return self.conninfo is None


@dataclass(frozen=True)
class StreamSettings:
    """``[stream]``: schedule, reconnect policy, pause sentinel, event weights.

    ``fail_fast_on_critical`` (spec 002): give up after ``reconnect_attempts``
    failed reconnects (exit 1); when false, keep retrying at the maximum delay.
    ``weights`` are event name -> weight overrides, checked against the
    domains' events by the stream (``weights_source`` names where they came from).
    """

    interval_seconds: float = 2.0
    batch_size: int = 50
    max_jitter_ms: int = 400
    fail_fast_on_critical: bool = True
    reconnect_base_seconds: float = 1.0
    reconnect_max_seconds: float = 30.0
    reconnect_attempts: int = 6
    progress_seconds: float = 10.0
    clients: int = 1  # concurrent connections, each its own process (workers.py)
    pause_file: Path | None = None  # besides the database's sentinel (pausing.py)
    weights: Mapping[str, int] = field(default_factory=dict)
    weights_source: str = ""


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"
    directory: Path = Path("logs")
    rotate_when: str = "midnight"
    backup_count: int = 7


@dataclass(frozen=True)
class Settings:
    """Everything a command needs, validated; build it with :func:`load_settings`."""

    connection: Connection
    connect_timeout: int = 10
    application_name: str = "oltp-simulator"
    search_path: str = "public"
    app_env: str = "DEV"
    render: bool = False
    force: bool = False
    dry_run: bool = False
    seed_size: str = DEFAULT_PROFILE
    seed_random: int = 0
    seed_as_of: datetime = DEFAULT_AS_OF
    seed_workers: int = 0
    profile: Profile = field(default_factory=lambda: resolve(DEFAULT_PROFILE))
    stream: StreamSettings = field(default_factory=StreamSettings)
    logging: LogSettings = field(default_factory=LogSettings)

    @property
    def production_like(self) -> bool:
        return self.app_env in PRODUCTION_LIKE or self.render

    def refusal(self, action: str) -> str | None:
        """Why the guardrail refuses ``action`` here, or ``None`` when it may run.

        Asked by a dry run too, so the plan can say the real run would stop.
        """
        if not self.production_like or self.force:
            return None
        why = f"APP_ENV={self.app_env}" if not self.render else "RENDER=true"
        return (
            f"refusing to {action}: {why} is production-like; "
            "set FORCE_SEED=true or pass --force to write anyway"
        )

    def guard_write(self, action: str) -> None:
        """Refuse a writing command in a production-like environment (exit 3)."""
        refused = self.refusal(action)
        if refused is not None:
            raise GuardrailRefused(refused)


def load_settings(
    *,
    dsn: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    seed_size: str | None = None,
    seed_random: int | None = None,
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read every source once and validate; flags given here win over all."""
    src = Sources.load(config_dir, env)
    size = check_choice(
        (Value(seed_size, "--profile", "command line") if seed_size else None)
        or src.get("SEED_SIZE"),
        DEFAULT_PROFILE,
        PROFILE_NAMES,
    )
    flag_random = (
        Value(seed_random, "--seed-random", "command line")
        if seed_random is not None
        else None
    )
    return Settings(
        connection=_connection(src, dsn),
        connect_timeout=check_int(src.get("PG_CONNECT_TIMEOUT"), 10, minimum=1),
        application_name=_str(src.get("PG_APPLICATION_NAME"), "oltp-simulator"),
        search_path=_str(src.get("PG_SEARCH_PATH"), "public"),
        app_env=check_choice(_env_only(src, "APP_ENV"), "DEV", APP_ENVS),
        render=_bool(_env_only(src, "RENDER"), False),
        force=force or _bool(_env_only(src, "FORCE_SEED"), False),
        dry_run=dry_run or _bool(_env_only(src, "DRY_RUN"), False),
        seed_size=size,
        seed_random=check_int(flag_random or src.get("SEED_RANDOM"), 0, minimum=0),
        seed_as_of=_as_of(src.get("SEED_AS_OF")),
        seed_workers=check_int(
            src.get("SEED_WORKERS"), min(2, os.cpu_count() or 1), minimum=0
        ),
        profile=resolve(size, seed_overrides(src)),
        stream=_stream(src),
        logging=LogSettings(
            level=check_choice(src.get("LOG_LEVEL"), "INFO", LOG_LEVELS),
            directory=Path(_str(src.get("LOG_DIR"), "logs")),
            rotate_when=check_choice(
                src.get("LOG_ROTATE_WHEN"), "MIDNIGHT", ROTATE_WHEN
            ),
            backup_count=check_int(src.get("LOG_BACKUP_COUNT"), 7, minimum=0),
        ),
    )


def _stream(src: Sources) -> StreamSettings:
    weights = src.get("STREAM_WEIGHTS")
    return StreamSettings(
        interval_seconds=_float(src.get("STREAM_INTERVAL_SECONDS"), 2.0),
        batch_size=check_int(src.get("BATCH_SIZE"), 50, minimum=1),
        max_jitter_ms=check_int(src.get("MAX_JITTER_MS"), 400, minimum=0),
        fail_fast_on_critical=_bool(src.get("STREAM_FAIL_FAST_ON_CRITICAL"), True),
        reconnect_base_seconds=_float(src.get("STREAM_RECONNECT_BASE_SECONDS"), 1.0),
        reconnect_max_seconds=_float(src.get("STREAM_RECONNECT_MAX_SECONDS"), 30.0),
        reconnect_attempts=check_int(
            src.get("STREAM_RECONNECT_ATTEMPTS"), 6, minimum=1
        ),
        progress_seconds=_float(src.get("STREAM_PROGRESS_SECONDS"), 10.0),
        clients=check_int(src.get("STREAM_CLIENTS"), 1, minimum=1),
        pause_file=Path(raw)
        if (raw := _str(src.get("STREAM_PAUSE_FILE"), ""))
        else None,
        weights=parse_weights(weights) if weights else {},
        weights_source=f"{weights.name} ({weights.source})" if weights else "",
    )


def parse_weights(value: Value) -> dict[str, int]:
    """``name=N,name=N`` (a flag or a variable) or a TOML table -> {name: N >= 0}.

    The flag and the variable follow one rule: every item between commas is a
    pair, so an empty value or a stray comma is an error in both (it is
    usually an unset shell variable, not a wish for the defaults: for those,
    leave the option out).
    """
    allowed = "name=N pairs separated by commas, N an integer >= 0"
    raw = value.raw
    if isinstance(raw, Mapping):
        pairs = [(str(k), v) for k, v in raw.items()]
    else:
        pairs = []
        for part in str(raw).split(","):
            name, sep, number = part.partition("=")
            if not sep or not name.strip():
                raise ConfigError(value.name, raw, allowed, value.source)
            pairs.append((name.strip(), number.strip()))
    weights: dict[str, int] = {}
    for name, number in pairs:
        if isinstance(number, bool):
            raise ConfigError(value.name, raw, allowed, value.source)
        try:
            weights[name.strip().lower()] = int(str(number))
        except ValueError:
            raise ConfigError(value.name, raw, allowed, value.source) from None
        if weights[name.strip().lower()] < 0:
            raise ConfigError(value.name, raw, allowed, value.source)
    return weights


def seed_overrides(src: Sources) -> dict[str, tuple[str, str]]:
    """``SEED_<TABLE>`` variables from the environment and .env (highest wins);
    the ``SEED_*`` settings (size, random, as-of, workers) are not overrides."""
    found: dict[str, tuple[str, str]] = {}
    for label, mapping in reversed(src.levels()[:2]):
        for name, raw in mapping.items():
            if name.startswith("SEED_") and name not in TOML_KEYS:
                found[name] = (raw, label)
    return found


def _as_of(value: Value | None) -> datetime:
    if value is None:
        return DEFAULT_AS_OF
    try:
        parsed = datetime.fromisoformat(str(value.raw).strip())
    except ValueError:
        raise ConfigError(
            value.name, value.raw, "an ISO date or datetime (UTC)", value.source
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.replace(microsecond=0)


def _env_only(src: Sources, name: str) -> Value | None:
    for label, mapping in src.levels()[:2]:
        if name in mapping:
            return Value(mapping[name], name, label)
    return None


def _connection(src: Sources, dsn: str | None) -> Connection:
    if dsn is not None:
        return Connection(check_dsn(Value(dsn, "--dsn", "command line")), "--dsn")
    for label, mapping in src.levels():
        if "DATABASE_URL" in mapping:
            name = "DATABASE_URL" if "toml" not in label else "[db] dsn"
            value = Value(mapping["DATABASE_URL"], name, label)
            return Connection(check_dsn(value), f"{name} ({label})")
        if any(key in mapping for key in PG_KEYS):
            parts = {key: src.get(key) for key in PG_KEYS}
            port = check_int(parts["PG_PORT"], 5432, minimum=1, maximum=65535)
            host = _str(parts["PG_HOST"], PG_DEFAULTS["PG_HOST"])
            bad = _bad_host(host)
            if bad is not None and parts["PG_HOST"] is not None:
                value = parts["PG_HOST"]
                raise ConfigError(
                    value.name, host, f"a host name ({bad})", value.source
                )
            conninfo = make_conninfo(
                host=host,
                port=str(port),
                user=_str(parts["PG_USER"], "postgres"),
                password=_str(parts["PG_PASSWORD"], "") or None,
                dbname=_str(parts["PG_DATABASE"], PG_DEFAULTS["PG_DATABASE"]),
            )
            source = f"PG_* ({label})"
            return Connection(conninfo, source, _defaulted_note(parts, conninfo))
    return Connection(None, "embedded server (no connection configured)")


PG_DEFAULTS = {
    "PG_HOST": "localhost",
    "PG_PORT": "5432",
    "PG_USER": "postgres",
    "PG_DATABASE": "hospital_oltp",
}
"""What an unset ``PG_*`` part means once any ``PG_*`` is set (spec 002's .env)."""


def _defaulted_note(parts: Mapping[str, Value | None], conninfo: str) -> str:
    """Say which parts were filled in: any one ``PG_*`` (even ``PG_PASSWORD``
    alone) leaves the embedded server for ``localhost:5432/hospital_oltp``,
    which surprises whoever set only a port or a password."""
    given = [name for name in PG_KEYS if parts[name] is not None]
    filled = [
        f"{name}={value}" for name, value in PG_DEFAULTS.items() if not parts[name]
    ]
    if not filled:
        return ""
    return (
        f"{', '.join(given)} set, so not the embedded server: connecting to "
        f"{describe(conninfo)} with defaults {', '.join(filled)}"
    )


def check_dsn(value: Value) -> str:
    """A URL or conninfo that libpq can parse; the error never shows a password."""
    text = str(value.raw).strip()
    allowed = "a postgresql:// URL or a conninfo string"
    try:
        params = conninfo_to_dict(text) if text else None
    except psycopg.ProgrammingError:
        params = None
    ports = str((params or {}).get("port") or "5432").split(",")
    if not params or not all(port.strip().isdigit() for port in ports):
        raise ConfigError(value.name, redact(text), allowed, value.source)
    if not all(1 <= int(port) <= 65535 for port in ports):  # libpq: at connect
        raise ConfigError(
            value.name,
            redact(text),
            f"{allowed} with a port from 1 to 65535",
            value.source,
        )
    bad = _bad_host(str(params.get("host") or ""))
    if bad is not None:
        raise ConfigError(
            value.name,
            redact(text),
            f"{allowed} with a valid host ({bad})",
            value.source,
        )
    return text


def _bad_host(hosts: str) -> str | None:
    """Why a host list is not resolvable by name, or ``None`` when it is fine.

    The resolver's IDNA codec raises ``UnicodeError`` (a traceback, not a
    connection error) for an empty label (``db..example.com``) or one of 64
    characters or more, so such names are refused here, with the rule.
    """
    for host in hosts.split(","):
        host = host.strip()
        if not host or host.startswith("/") or ":" in host:
            continue  # default, Unix socket directory, IPv6 address
        try:
            host.encode("idna")
        except UnicodeError:
            return f"{host!r} has an empty label or one over 63 characters"
    return None


def redact(conninfo: str) -> str:
    """The conninfo with any password replaced, for messages and logs."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<unparsable connection string>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**{k: str(v) for k, v in params.items()})


def conninfo_url(conninfo: str) -> str:
    """The conninfo as a ``postgresql://`` URL (SQLAlchemy's form, for example
    ``create_engine(url.replace("postgresql", "postgresql+psycopg", 1))``).

    Parameters that have no place in the URL's authority (a socket directory
    as host, sslmode, ...) go in its query string.
    """
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", None)
    auth = user + (f":{quote(password, safe='')}" if password is not None else "")
    auth += "@" if auth else ""
    host = params.get("host", "")
    netloc = ""
    if host and not host.startswith("/") and "," not in host:
        params.pop("host")
        netloc = f"[{host}]" if ":" in host else host
        port = params.pop("port", "")
        netloc += f":{port}" if port else ""
    dbname = quote(params.pop("dbname", ""), safe="")
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{auth}{netloc}/{dbname}{query}"


def redact_text(text: str) -> str:
    """``text`` with any ``password=...`` value or URL password masked (driver
    messages may quote the connection string they were given)."""
    return _URL_PASSWORD.sub(r"\1***@", _PASSWORD.sub(r"\1***", text))


_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@")


def describe(conninfo: str) -> str:
    """``host:port/dbname`` for one-line messages (no user, no password)."""
    params = conninfo_to_dict(conninfo)
    host = params.get("host") or "localhost"
    return f"{host}:{params.get('port') or 5432}/{params.get('dbname') or ''}"


def _str(value: Value | None, default: str) -> str:
    return default if value is None else str(value.raw)


def check_int(
    value: Value | None, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    if value is None:
        return default
    allowed = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum else "")
    raw = value.raw
    if isinstance(raw, bool):
        raise ConfigError(value.name, raw, allowed, value.source)
    try:
        number = int(str(raw).strip())
    except ValueError:
        raise ConfigError(value.name, raw, allowed, value.source) from None
    if number < minimum or (maximum is not None and number > maximum):
        raise ConfigError(value.name, raw, allowed, value.source)
    return number


def _float(value: Value | None, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(str(value.raw).strip())
    except ValueError:
        number = -1.0
    if not number >= 0:  # also rejects NaN
        raise ConfigError(value.name, value.raw, "a number >= 0", value.source)
    return number


def _bool(value: Value | None, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value.raw, bool):
        return value.raw
    text = str(value.raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(value.name, value.raw, "true or false", value.source)


def check_choice(value: Value | None, default: str, allowed: tuple[str, ...]) -> str:
    if value is None:
        return default
    text = str(value.raw).strip().upper()
    if text not in allowed:
        raise ConfigError(
            value.name, value.raw, "one of " + ", ".join(allowed), value.source
        )
    return text
