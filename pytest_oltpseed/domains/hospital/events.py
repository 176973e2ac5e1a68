"""Hospital stream events: spec 002's stream (consultas, exames, internações,
novos pacientes) plus the updates and rare deletes a real hospital system makes.

Default weights (out of 200) keep the seeded mixes over a run of any length,
without waiting real days for anything to fall due:

* consultas: half the bookings are same-day (a walk-in, dated in the last
  hours, due at once), half for the next 60 days; ``consulta_status`` closes
  due ones at 20 for 44 bookings, so the open (agendada) share settles at
  about 55% and the outcomes at 35/5/5 (cancelada drawn a little more often
  than 5/45, since ``consulta_delete`` purges cancelled ones);
* internações: an admission is registered for a patient on file for at
  least 10 days, admitted 1-10 days ago, so nearly 80% can be discharged at
  once; ``alta`` (9 for 12 admissions) keeps the open share at about 25%;
* exames: results are 90% of new exams (about 10% pending).

Inserts are about 51% of events, updates 48%, deletes 1%.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pytest_oltpseed.data import brazil
from pytest_oltpseed.data.factory import Ref
from pytest_oltpseed.domains.hospital.factories import (
    COBERTURAS,
    RESULTADOS,
    STAY_MAX,
    STAY_MIN,
    Consulta,
    Exame,
    Internacao,
    Paciente,
    PacienteConvenio,
    stay_length,
)
from pytest_oltpseed.stream.events import Event, StreamContext

NEW_PATIENT_CONVENIOS = {"0": 30, "1": 45, "2": 20, "3": 5}  # 0-3 (spec 002)
# The 35/5/5 outcomes of the 55/35/5/5 mix; cancelada a bit more often, as
# consulta_delete (1 in 200 events) purges about one in three cancelled ones.
OUTCOMES = {"realizada": 35, "faltou": 5, "cancelada": 7}
RECENT = timedelta(hours=6)  # exams (and walk-ins) are recorded soon after
WALK_IN = 0.5  # share of bookings for the same day: due at once
ADMITTED_AGO = (timedelta(days=1), STAY_MAX)  # when a registered stay began
ESTABLISHED = "data_cadastro <= %s"  # patients on file before the stay began
DUE = "status = 'agendada' AND data <= %s"
CANCELLED = "status = 'cancelada'"
PENDING = "resultado IS NULL"
DISCHARGEABLE = "data_saida IS NULL AND data_entrada <= %s"


def novo_paciente(ctx: StreamContext) -> None:
    """A patient registered now, holding 0-3 distinct convênios."""
    patient = Paciente.make_row(
        ctx, create=True, overrides={"data_cadastro": ctx.as_of}
    )
    Paciente.write(ctx, patient)
    held: set[int] = set()
    for _ in range(int(ctx.weighted(NEW_PATIENT_CONVENIOS))):
        convenio = ctx.pick("convenios")
        if convenio is None or convenio["id"] in held:
            continue
        held.add(convenio["id"])
        membership = PacienteConvenio.make_row(
            ctx,
            create=True,
            overrides={
                "paciente_id": Ref("pacientes", patient),
                "convenio_id": Ref("convenios", convenio),
            },
        )
        PacienteConvenio.write(ctx, membership)


def consulta(ctx: StreamContext) -> None:
    """An appointment: half same-day walk-ins (dated in the last hours, so they
    are due at once and fall due as fast as bookings come), half booked for
    the next 60 days."""
    overrides: dict[str, Any] = {"status": "agendada"}
    patient = ctx.pick("pacientes") if ctx.rng.random() < WALK_IN else None
    if patient is not None:
        start = max(patient["data_cadastro"], ctx.as_of - RECENT)
        overrides["paciente_id"] = Ref("pacientes", patient)
        overrides["data"] = ctx.moment(start, ctx.as_of)
    row = Consulta.make_row(ctx, create=True, overrides=overrides)
    Consulta.write(ctx, row)
    if row["data"] <= ctx.as_of:
        ctx.offer("consultas", ("data",), DUE, row)


def consulta_status(ctx: StreamContext) -> None:
    """A due appointment is closed: realizada, faltou or cancelada (35/5/5).

    Future ones wait: closing them early would skew the mix."""
    found = ctx.take("consultas", ("data",), DUE, (ctx.as_of,))
    ctx.execute(
        "consultas",
        "update",
        "UPDATE consultas SET status = %s WHERE id = %s AND status = 'agendada'",
        (ctx.weighted(OUTCOMES), found["id"]),
    )


def exame(ctx: StreamContext) -> None:
    """An exam taken in the last hours, its result pending."""
    overrides: dict[str, Any] = {"resultado": None}
    patient = ctx.pick("pacientes")
    if patient is not None:  # else the factory creates a patient and dates it
        start = max(patient["data_cadastro"], ctx.as_of - RECENT)
        overrides["paciente_id"] = Ref("pacientes", patient)
        overrides["data"] = ctx.moment(start, ctx.as_of)
    row = Exame.make_row(ctx, create=True, overrides=overrides)
    Exame.write(ctx, row)
    ctx.offer("exames", (), PENDING, row)


def exame_resultado(ctx: StreamContext) -> None:
    """A pending exam gets its result."""
    found = ctx.take("exames", (), PENDING)
    ctx.execute(
        "exames",
        "update",
        "UPDATE exames SET resultado = %s WHERE id = %s AND resultado IS NULL",
        (ctx.weighted(RESULTADOS), found["id"]),
    )


def internacao(ctx: StreamContext) -> None:
    """An open stay, admitted 1-10 days ago, for a patient on file since before
    that: about 80% can be discharged at once (3 days after admission), so
    discharges keep pace with admissions however long the run. With no such
    patient, an admission now (dischargeable in 3 days)."""
    overrides: dict[str, Any] = {"sem_alta": True}
    earliest, latest = ctx.as_of - ADMITTED_AGO[1], ctx.as_of - ADMITTED_AGO[0]
    patient = ctx.sample("pacientes", ESTABLISHED, (earliest,))
    if patient is not None:
        overrides["paciente_id"] = Ref("pacientes", patient)
        overrides["data_entrada"] = ctx.moment(earliest, latest)
    row = Internacao.make_row(ctx, create=True, overrides=overrides)
    Internacao.write(ctx, row)
    if row["data_entrada"] <= ctx.as_of - STAY_MIN:
        ctx.offer("internacoes", ("data_entrada",), DISCHARGEABLE, row)


def alta(ctx: StreamContext) -> None:
    """A discharge 3-10 days after admission (never in the future)."""
    found = ctx.take(
        "internacoes", ("data_entrada",), DISCHARGEABLE, (ctx.as_of - STAY_MIN,)
    )
    saida = min(ctx.as_of, found["data_entrada"] + stay_length(ctx))
    ctx.execute(
        "internacoes",
        "update",
        "UPDATE internacoes SET data_saida = %s WHERE id = %s AND data_saida IS NULL",
        (saida, found["id"]),
    )


def paciente_update(ctx: StreamContext) -> None:
    """A patient's new phone number or address."""
    patient = ctx.existing("pacientes")
    if ctx.rng.random() < 0.5:
        query = "UPDATE pacientes SET telefone = %s WHERE id = %s"
        value = brazil.phone(ctx.rng.random)
    else:
        query = "UPDATE pacientes SET endereco = %s WHERE id = %s"
        value = ctx.address()
    ctx.execute("pacientes", "update", query, (value, patient["id"]))


def convenio_update(ctx: StreamContext) -> None:
    """A plan's coverage changes, or a patient's card is renewed for a year."""
    if ctx.rng.random() < 0.5:
        convenio = ctx.existing("convenios")
        ctx.execute(
            "convenios",
            "update",
            "UPDATE convenios SET cobertura = %s WHERE id = %s",
            (ctx.choice(COBERTURAS), convenio["id"]),
        )
        return
    membership = ctx.existing("pacientes_convenios")
    ctx.execute(
        "pacientes_convenios",
        "update",
        "UPDATE pacientes_convenios SET validade = validade + 365 WHERE id = %s",
        (membership["id"],),
    )


def consulta_delete(ctx: StreamContext) -> None:
    """A cancelled appointment purged (a leaf row)."""
    found = ctx.take("consultas", (), CANCELLED)
    ctx.execute(
        "consultas",
        "delete",
        "DELETE FROM consultas WHERE id = %s AND status = 'cancelada'",
        (found["id"],),
    )


def exame_delete(ctx: StreamContext) -> None:
    """An exam entered by mistake, still without result, removed (a leaf row)."""
    found = ctx.take("exames", (), PENDING)
    ctx.execute(
        "exames",
        "delete",
        "DELETE FROM exames WHERE id = %s AND resultado IS NULL",
        (found["id"],),
    )


EVENTS = (
    Event("novo_paciente", 16, novo_paciente, ("pacientes", "pacientes_convenios"),
          "new patient with 0-3 convênios"),
    Event("consulta", 44, consulta, ("consultas",), "appointment booked (agendada)"),
    Event("consulta_status", 20, consulta_status, ("consultas",),
          "agendada -> realizada/faltou/cancelada"),
    Event("exame", 30, exame, ("exames",), "exam taken, result pending"),
    Event("exame_resultado", 27, exame_resultado, ("exames",), "exam result set"),
    Event("internacao", 12, internacao, ("internacoes",), "admission (open)"),
    Event("alta", 9, alta, ("internacoes",), "discharge after 3-10 days"),
    Event("paciente_update", 26, paciente_update, ("pacientes",),
          "patient phone or address changed"),
    Event("convenio_update", 14, convenio_update, ("convenios", "pacientes_convenios"),
          "coverage changed or card renewed", late=True),
    Event("consulta_delete", 1, consulta_delete, ("consultas",),
          "cancelled appointment deleted"),
    Event("exame_delete", 1, exame_delete, ("exames",), "pending exam deleted"),
)  # fmt: skip
