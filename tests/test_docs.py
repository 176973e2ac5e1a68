"""Every ``oltpseed ...`` command line in README.md and docs/*.md parses.

A renamed option or command leaves the docs stale without any test failing,
and a newcomer's first copy-paste is a usage error. Each documented line goes
through the CLI's own parser (the command Typer builds, nothing runs): the
command path must exist, every option must be one the command has, and a
worked example's values must convert to the option's type.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from pytest_oltpseed.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```")
INLINE = re.compile(r"`(oltpseed [^`]+)`")
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
PLACEHOLDER = re.compile(r"[\[\]]|\.\.\.|\|")  # a synopsis, not an example


@dataclass(frozen=True)
class Line:
    """One documented command: where it is and its words after ``oltpseed``."""

    where: str
    words: tuple[str, ...]
    synopsis: bool  # prose, `[--opt]`, `a|b`, `...`: only the names are checked

    def __str__(self) -> str:
        return f"{self.where}: oltpseed {' '.join(self.words)}"


def _commands(text: str) -> list[str]:
    """The ``oltpseed`` commands of one shell line (split at ``&&``, ``&``,
    ``;``, a pipe, and the docs' `` / `` between two commands)."""
    found = []
    for part in re.split(r"&&|\s&(?=\s|$)|\s\|\s|;| / ", text):
        words = part.strip()
        while words and ASSIGNMENT.match(words.split(" ", 1)[0]):
            words = words.split(" ", 1)[1] if " " in words else ""
        if words.startswith("oltpseed ") or words == "oltpseed":
            found.append(words)
    return found


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Shell lines of the fenced blocks (continuations joined, comments cut)."""
    lines: list[tuple[int, str]] = []
    inside = False
    pending = ""
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(raw.strip()):
            inside = not inside
            continue
        if not inside:
            continue
        line = raw.strip()
        if pending:
            line = pending + " " + line
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        pending = ""
        lines.append((number, re.sub(r"\s#.*$", "", line)))
    return lines


def documented() -> list[Line]:
    found: list[Line] = []
    for path in DOCS:
        name = path.relative_to(ROOT).as_posix()
        for number, line in _code_lines(path):
            found += [_line(f"{name}:{number}", command) for command in _commands(line)]
        text = path.read_text(encoding="utf-8")
        for match in INLINE.finditer(text):  # prose: a mention, names checked only
            number = text.count("\n", 0, match.start()) + 1
            found += [
                _line(f"{name}:{number}", command, mention=True)
                for command in _commands(" ".join(match.group(1).split()))
            ]
    return found


def _line(where: str, command: str, mention: bool = False) -> Line:
    synopsis = mention or bool(PLACEHOLDER.search(command))
    try:
        words = shlex.split(command)
    except ValueError:  # an inline span cut mid-quote
        words, synopsis = command.split(), True
    return Line(where, tuple(words[1:]), synopsis)


@functools.cache
def cli() -> Any:
    """The ``oltpseed`` command Typer builds (once: it takes a while)."""
    return typer.main.get_command(app)


def _group(command: Any) -> bool:
    return hasattr(command, "commands")


def _resolve(words: list[str]) -> tuple[list[Any], list[str]]:
    """The command path the words name, and the words left for the last one."""
    command = cli()
    path = [command]
    rest = list(words)
    while _group(command) and rest:
        index = 0
        while index < len(rest) and rest[index].startswith("-"):
            option = _known(command, rest[index])  # a group's own, before its command
            index += 1 if option is None or option.is_flag or "=" in rest[index] else 2
        if index >= len(rest) or rest[index] not in command.commands:
            break
        command = command.commands[rest[index]]
        path.append(command)
        rest = rest[index + 1 :]
    return path, rest


def _known(command: Any, word: str) -> Any:
    """The option ``word`` names (it must be one of the command's)."""
    name = word.split("=", 1)[0].strip("[]")
    if not name.startswith("-") or name in ("-", "--", "-h", "--help"):
        return None
    for param in command.params:
        if name in (
            *param.opts,
            *param.secondary_opts,
        ):
            return param
    raise AssertionError(f"{command.name} has no option {name}")


def _parse(words: tuple[str, ...]) -> None:
    """Parse ``oltpseed WORDS`` as the CLI would, running nothing."""
    command = cli()
    ctx = command.make_context("oltpseed", list(words))
    while _group(command):
        rest = [*ctx._protected_args, *ctx.args]  # the command and its words
        if not rest:
            return
        name, sub, args = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        command, ctx = sub, sub.make_context(name, args, parent=ctx)


LINES = documented()


def test_the_docs_have_commands_to_check() -> None:
    assert len(LINES) > 100  # the extraction found the docs' command lines
    assert any(line.words[:2] == ("cdc", "verify") for line in LINES)
    assert any("--domain-path" in line.words for line in LINES)


@pytest.mark.parametrize("line", LINES, ids=str)
def test_documented_command_parses(line: Line) -> None:
    path, rest = _resolve(list(line.words))
    last = path[-1]
    if _group(last):  # what is left must name its commands
        words = [w for w in rest if not w.startswith("-")][:1]
        for word in (alternative for w in words for alternative in w.split("|")):
            assert word in last.commands, f"{line}: no command {word!r}"
    for word in rest:
        _known(last, word)
    if line.synopsis or "--help" in line.words or "--version" in line.words:
        return
    try:
        _parse(line.words)
    except typer.TyperException as exc:  # the parser's usage errors
        pytest.fail(f"{line}: {exc.format_message()}")
