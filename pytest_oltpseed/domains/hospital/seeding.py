"""Hospital stage hooks: the at-most-3-convênios rule for pacientes_convenios."""

from __future__ import annotations

from array import array
from typing import Any

from pytest_oltpseed.domains.hospital.factories import MAX_CONVENIOS
from pytest_oltpseed.seed.chunks import Planned, Positional
from pytest_oltpseed.seed.seeder import Seeder, Stage

SHARE = 0.65  # per pass, at most this share of candidates get one more plan


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
        rng = seeder.ctx.rng
        # Plan from scratch (same seed, same pairs: a rerun conflicts and adds
        # nothing), then drop pairs that would give someone a 4th convênio.
        self.pairs_p, self.pairs_c = array("q"), array("q")
        planned: dict[int, set[int]] = {}
        remaining = stage.count
        room = array("b", [MAX_CONVENIOS]) * len(patients)
        previous: list[int] | None = None  # pass n deals to pass n-1's receivers
        draw, size = rng.random, len(plans)
        pairs_p, pairs_c = self.pairs_p, self.pairs_c
        while remaining > 0 and size:
            eligible = [i for i in (previous or range(len(room))) if room[i] > 0]
            if not eligible:
                if previous is None:
                    break
                previous = None
                continue
            share = min(SHARE, remaining / len(eligible))
            receivers = []
            # The hot loop of the stage (~1 us a patient): names bound
            # locally; a plan is drawn by index (ids are distinct, so "the
            # index is not mine" is "the id is not mine").
            for i in eligible:
                if remaining == 0:
                    break
                if draw() >= share:
                    continue
                mine = planned.get(i)
                if mine is None:
                    mine = planned[i] = set()
                if len(mine) >= size:
                    room[i] = 0
                    continue
                while True:
                    j = int(draw() * size)
                    if j not in mine:
                        break
                mine.add(j)
                pairs_p.append(i)
                pairs_c.append(j)
                room[i] -= 1
                remaining -= 1
                receivers.append(i)
            previous = receivers
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
