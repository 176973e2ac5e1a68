"""Logging: logger ``oltp.simulator``, console plus rotating files, PII masked.

Files (spec 002): ``app.log`` gets everything, ``stream.log`` the stream's
records (logger ``oltp.simulator.stream``), ``errors.log`` errors only; all
rotate at midnight and keep 7 backups by default. A filter on every handler
masks CPF, CNPJ and phone numbers in the message *and* in any traceback, so no
log line ever carries a full identifier.
"""

from __future__ import annotations

import logging
import re
import tempfile
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path

from pytest_oltpseed.config import LogSettings
from pytest_oltpseed.errors import ConfigError

LOGGER_NAME = "oltp.simulator"
STREAM_LOGGER_NAME = f"{LOGGER_NAME}.stream"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(funcName)s] - %(message)s"
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
FILES = ("app.log", "stream.log", "errors.log")

_CNPJ = r"\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}"
_CPF = r"\d{3}\.?\d{3}\.?\d{3}-?\d{2}"
_PHONE = (
    r"(?:\+55[\s-]?)?(?:\(0?\d{2}\)|0?\d{2})[\s-]?(?:9[\s-]?)?\d{4}[\s-]?\d{4}"
    r"|0[358]00[\s-]?\d{3}[\s-]?\d{4}"
)
_PII = re.compile(rf"(?<![\d*])(?:{_CNPJ}|{_CPF}|{_PHONE})(?![\d*])")


def _hide(match: re.Match[str]) -> str:
    text = match.group(0)
    return re.sub(r"\d", "*", text[:-2]) + text[-2:]


def mask(text: str) -> str:
    """Replace every digit of a CPF, CNPJ or phone number but the last two."""
    return _PII.sub(_hide, text)


class _Masked:
    """A log argument shown (``%s``) or represented (``%r``) masked."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return mask(str(self.value))

    def __repr__(self) -> str:
        return mask(repr(self.value))


class MaskingFilter(logging.Filter):
    """Rewrites the record in place so every handler and formatter sees it masked.

    Personal data reaches a log as text (a row's value, a server's error
    detail); the template and every text argument are masked before they are
    put together. Numeric arguments (a seed, a count, a transaction id) are
    never personal data and stay whole, so a logged seed can repeat a run.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_oltpseed_masked", False):  # another handler did it
            return True
        record._oltpseed_masked = True  # type: ignore[attr-defined]
        args = record.args
        if isinstance(args, tuple) and args:
            shown = tuple(a if isinstance(a, int | float) else _Masked(a) for a in args)
            try:
                record.msg = mask(str(record.msg)) % shown
            except (TypeError, ValueError):  # e.g. %d given text: mask it whole
                record.msg = mask(record.getMessage())
        else:
            record.msg = mask(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


class _StreamOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith(STREAM_LOGGER_NAME)


def setup(settings: LogSettings, *, console: bool = True) -> logging.Logger:
    """Install our handlers on ``oltp.simulator``; calling it again replaces them."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, "_oltpseed", False):
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(settings.level)
    logger.propagate = False
    try:
        settings.directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            "LOG_DIR",
            str(settings.directory),
            f"a writable directory ({exc.strerror or exc})",
        ) from None
    _check_writable(Path(settings.directory), FILES)
    handlers: list[logging.Handler] = [
        _file(settings, "app.log", logging.NOTSET),
        _file(settings, "stream.log", logging.NOTSET, _StreamOnly()),
        _file(settings, "errors.log", logging.ERROR),
    ]
    if console:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        handlers.append(stream)
    for handler in handlers:
        handler.addFilter(MaskingFilter())
        handler._oltpseed = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger


def _check_writable(directory: Path, names: tuple[str, ...]) -> None:
    """Refuse now a log file that cannot be written (one line, exit 2).

    The handlers open their files at the first record: a file owned by
    another user, or a directory in its place, would otherwise print a
    traceback for every record of the run. An existing file is opened for
    append (nothing changes); a missing one is probed with a temporary file,
    so no empty ``errors.log`` is left behind.
    """
    for name in names:
        path = directory / name
        try:
            if path.exists():
                with path.open("a", encoding="utf-8"):
                    pass
            else:
                with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{name}."):
                    pass
        except OSError as exc:
            raise ConfigError(
                "LOG_DIR",
                str(directory),
                f"a writable directory ({name}: {exc.strerror or exc})",
            ) from None


def _file(
    settings: LogSettings, name: str, level: int, *filters: logging.Filter
) -> logging.Handler:
    handler = TimedRotatingFileHandler(
        Path(settings.directory) / name,
        when=settings.rotate_when,
        backupCount=settings.backup_count,
        encoding="utf-8",
        delay=True,
        utc=True,
    )
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    for extra in filters:
        handler.addFilter(extra)
    return handler


def get(child: str | None = None) -> logging.Logger:
    """``oltp.simulator`` or one of its children (e.g. ``get("stream")``)."""
    return logging.getLogger(f"{LOGGER_NAME}.{child}" if child else LOGGER_NAME)
