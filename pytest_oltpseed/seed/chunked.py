"""A stage without rules across rows, in chunks: rendered here or in forked
workers, each chunk copied on a writer thread while the next is generated.
Moved out of :mod:`.seeder` (which reads its thresholds ``PARALLEL_AT`` and
``_CAN_FORK`` at call time, so a changed threshold takes effect here too)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

from pytest_oltpseed.data import columns
from pytest_oltpseed.data.factory import Parent
from pytest_oltpseed.seed import binary, chunks
from pytest_oltpseed.seed.ids import IdBlock
from pytest_oltpseed.seed.writer import _Writer, pipeline

if TYPE_CHECKING:
    from pytest_oltpseed.seed.seeder import Seeder, Stage, StageResult


def run(
    seeder: Seeder,
    stage: Stage,
    result: StageResult,
    count: int,
    positional: chunks.Positional | None = None,
    *,
    block: IdBlock | None = None,
) -> None:
    """A stage without rules across rows (or with its parents planned):
    chunks of COPY data, from workers when it is large; with ``block``,
    rows carry their keys (see :mod:`.ids`)."""
    from pytest_oltpseed.seed import seeder as seed_module  # its thresholds

    writer = _Writer(seeder.conn, stage, key=block.column if block else None)
    forms = None
    column_wise = chunks.column_wise(stage.table, count, positional)
    if column_wise:
        kinds = chunks.kinds(stage.table, numbered=block is not None)
        forms = binary.forms(seeder.conn, stage.table, writer.columns, kinds)
    writer.binary = forms is not None
    parts = chunks.plan_chunks(
        stage.table,
        count,
        seeder.seed,
        seeder.as_of,
        block.first if block else None,
        forms,
    )
    if (
        seeder.workers > 0
        and count >= seed_module.PARALLEL_AT
        and seed_module._CAN_FORK
        and not column_wise
        and seeder._stop is None  # never fork from a lane's thread
    ):
        columns.numpy_settled()  # never fork with an import half done
        chunks.STAGE_POOLS.clear()
        for name, kind, declaration in stage.factory._plan():
            if kind is Parent and name not in (positional or {}):
                key = (declaration.table, declaration.carry)
                chunks.STAGE_POOLS[key] = seeder.pool(*key)
        chunks.STAGE_POSITIONAL.clear()
        chunks.STAGE_POSITIONAL.update(positional or {})
        context = multiprocessing.get_context("fork")
        try:
            with ProcessPoolExecutor(
                seeder.workers, mp_context=context, initializer=chunks.quiet_worker
            ) as procs:
                _land(
                    seeder, stage, result, writer, parts, procs.map(chunks.work, parts)
                )
        finally:
            chunks.STAGE_POOLS.clear()
            chunks.STAGE_POSITIONAL.clear()
    else:
        rendered = (chunks.render(part, seeder.pool, positional) for part in parts)
        _land(seeder, stage, result, writer, parts, rendered)
    if block:
        block.finish(count)


def _land(
    seeder: Seeder,
    stage: Stage,
    result: StageResult,
    writer: _Writer,
    parts: list[chunks.Chunk],
    rendered: Iterable[tuple[bytes, list[tuple[tuple[str, str], int]]]],
) -> None:
    """COPY chunk n while chunk n+1 is generated (here or received from a
    worker), noting the identifier indices each chunk used."""

    def jobs() -> Iterator[tuple[int, Callable[[], None]]]:
        for part, (data, used) in zip(parts, rendered, strict=True):
            for key, next_index in used:
                seeder.ctx.note_index(key, next_index)
            yield part.size, partial(writer.write_text, data, part.size, result)

    pipeline(seeder, stage, jobs())
