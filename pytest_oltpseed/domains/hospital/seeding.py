"""Hospital stage hooks: the at-most-3-convênios rule for pacientes_convenios."""

from __future__ import annotations

from array import array
from bisect import insort
from collections.abc import Callable
from typing import Any

from pytest_oltpseed.data import columns
from pytest_oltpseed.domains.hospital.factories import MAX_CONVENIOS
from pytest_oltpseed.seed.chunks import Planned, Positional
from pytest_oltpseed.seed.seeder import Seeder, Stage

SHARE = 0.65  # per pass, at most this share of candidates get one more plan

Keys = Callable[[int, str], int]  # (pass, "accept" | "plan") -> stream key


class Memberships:
    """Plans (patient, convênio) pairs up front: distinct per patient, at most 3.

    Memberships are dealt in passes, each to a random share of the previous
    pass's receivers, so patients hold 0-3 (about a third none, a sixth three at
    MEDIUM) summing to the profile's total; existing memberships count, so
    nobody gets a 4th.
    """

    def plan(self, seeder: Seeder, stage: Stage) -> tuple[Positional, int]:
        patients = seeder.pool("pacientes")
        plans = seeder.pool("convenios")
        # Plan from scratch (same seed, same pairs: a rerun conflicts and adds
        # nothing), then drop pairs that would give someone a 4th convênio.
        deal = deal_columns if columns.fast_enabled(stage.count) else deal_rows
        self.pairs_p, self.pairs_c = deal(
            len(patients), len(plans), stage.count, keys(seeder.seed, stage.table)
        )
        self._drop_fourths(seeder, patients, plans)
        positional: Positional = {
            "paciente_id": Planned(patients, self.pairs_p),
            "convenio_id": Planned(plans, self.pairs_c),
        }
        return positional, len(self.pairs_p)

    def _drop_fourths(self, seeder: Seeder, patients: Any, plans: Any) -> None:
        held: dict[int, set[int]] = {}
        for patient, plan in seeder.conn.execute(
            "SELECT paciente_id, convenio_id FROM pacientes_convenios"
        ):
            held.setdefault(patient, set()).add(plan)
        if not held:
            return
        kept_p, kept_c = array("q"), array("q")
        for i, j in zip(self.pairs_p, self.pairs_c, strict=True):
            mine = held.setdefault(patients.ids[i], set())
            if plans.ids[j] not in mine:  # an existing pair simply conflicts
                if len(mine) >= MAX_CONVENIOS:
                    continue
                mine.add(plans.ids[j])
            kept_p.append(i)
            kept_c.append(j)
        self.pairs_p, self.pairs_c = kept_p, kept_c


HOOKS = {"pacientes_convenios": Memberships}


def keys(seed: int, table: str) -> Keys:
    """The counter-based streams of the plan: one per pass and purpose."""
    return lambda step, what: columns.stream_key(seed, table, "plan", step, what)


def deal_rows(patients: int, size: int, total: int, keys: Keys) -> tuple[Any, Any]:
    """``total`` (patient index, plan index) pairs, one patient at a time.

    A pass offers one more plan to each eligible patient (the previous pass's
    receivers, or everyone with room when there are none) with probability
    ``min(SHARE, remaining / eligible)``; the plan is the ``pick``-th of those
    the patient does not hold yet. Every draw is the counter-based uniform of
    the patient's index, so :func:`deal_columns` computes the same pairs over
    arrays.
    """
    cap = min(MAX_CONVENIOS, size)
    held: dict[int, list[int]] = {}
    pairs_p, pairs_c = array("q"), array("q")
    remaining, step = total, 0
    previous: list[int] = []
    uniform, pick = columns.uniform, columns.pick
    while remaining > 0 and cap:
        source = previous or range(patients)
        eligible = [i for i in source if len(held.get(i, ())) < cap]
        if not eligible:
            if not previous:
                break
            previous = []
            continue
        share = min(SHARE, remaining / len(eligible))
        accept, choose = keys(step, "accept"), keys(step, "plan")
        step += 1
        receivers: list[int] = []
        for i in eligible:
            if uniform(accept, i) >= share:
                continue
            mine = held.setdefault(i, [])
            j = pick(uniform(choose, i), size - len(mine))
            for h in mine:  # ascending: j becomes the j-th plan not held
                if j >= h:
                    j += 1
            insort(mine, j)
            pairs_p.append(i)
            pairs_c.append(j)
            receivers.append(i)
            if len(receivers) == remaining:
                break
        remaining -= len(receivers)
        previous = receivers
    return pairs_p, pairs_c


def deal_columns(patients: int, size: int, total: int, keys: Keys) -> tuple[Any, Any]:
    """:func:`deal_rows` over NumPy arrays: the same pairs, a pass at a time."""
    columns.load_numpy()
    np = columns.np
    cap = min(MAX_CONVENIOS, size)
    count = np.zeros(patients, dtype=np.int64)
    # Plans held, ascending; ``size`` marks a free slot (sorts last, and no
    # pick reaches it).
    held = np.full((patients, max(cap, 1)), size, dtype=np.int64)
    everyone = np.arange(patients, dtype=np.int64)
    out_p, out_c = [], []
    remaining, previous, step = total, everyone[:0], 0
    while remaining > 0 and cap:
        source = previous if len(previous) else everyone
        eligible = source[count[source] < cap]
        if not len(eligible):
            if not len(previous):
                break
            previous = everyone[:0]
            continue
        share = min(SHARE, remaining / len(eligible))
        accept, choose = keys(step, "accept"), keys(step, "plan")
        step += 1
        receivers = eligible[columns.uniforms_at(accept, eligible) < share]
        receivers = receivers[:remaining]
        mine = count[receivers]
        j = (columns.uniforms_at(choose, receivers) * (size - mine)).astype(np.int64)
        rows = held[receivers]
        for slot in range(cap):
            j += j >= rows[:, slot]
        rows[np.arange(len(receivers)), mine] = j
        rows.sort(axis=1)
        held[receivers] = rows
        count[receivers] += 1
        out_p.append(receivers)
        out_c.append(j)
        remaining -= len(receivers)
        previous = receivers
    if not out_p:
        return everyone[:0], everyone[:0]
    return np.concatenate(out_p), np.concatenate(out_c)
