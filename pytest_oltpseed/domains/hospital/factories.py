"""Hospital factories: the single definition of every hospital column (spec 002).

Rules encoded here: pt_BR names, phones and addresses; CPF/CNPJ with valid
check digits; CRM ``CRM/UF 123456``; consulta status 55/35/5/5 (agendada in
the next 60 days, the others in the past); internações of 3-10 days, a
quarter still open; every event at or after its patient's ``data_cadastro``;
at most 3 convênios per patient. Times are naive UTC around ``ctx.as_of``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from psycopg import sql

from pytest_oltpseed.data import brazil
from pytest_oltpseed.data.columns import (
    AsOf,
    Before,
    Choice,
    Day,
    DayStart,
    Digits,
    EndAfter,
    Flag,
    Indexed,
    Int,
    Join,
    Latest,
    Maybe,
    Moment,
    ParentCol,
    Plus,
    Span,
    Switch,
    Weighted,
)
from pytest_oltpseed.data.factory import Col, Context, Parent, SQLFactory, Trait
from pytest_oltpseed.data.people import ADDRESS, NAME, PHONE

DOMAIN = "hospital"
ESPECIALIDADES = (
    "Clínica Médica", "Cardiologia", "Pediatria", "Ginecologia e Obstetrícia",
    "Ortopedia e Traumatologia", "Dermatologia", "Neurologia", "Psiquiatria",
    "Oftalmologia", "Otorrinolaringologia", "Urologia", "Endocrinologia",
    "Gastroenterologia", "Pneumologia", "Oncologia", "Cirurgia Geral",
    "Anestesiologia", "Radiologia", "Nefrologia", "Infectologia", "Geriatria",
    "Reumatologia", "Medicina de Família e Comunidade",
)  # fmt: skip
OPERADORAS = (
    "Unimed", "Amil", "Bradesco Saúde", "SulAmérica", "Hapvida",
    "NotreDame Intermédica", "Porto Seguro Saúde", "Golden Cross",
    "Prevent Senior", "Cassi", "Geap", "Care Plus", "Mediservice", "Allianz Saúde",
)  # fmt: skip
PLANOS = ("Essencial", "Clássico", "Executivo", "Premium", "Nacional", "Regional",
          "Empresarial", "Flex")  # fmt: skip
TIPOS_CONVENIO = {"privado": 65, "empresarial": 30, "publico": 5}
COBERTURAS = ("ambulatorial", "hospitalar", "ambulatorial e hospitalar",
              "hospitalar com obstetrícia", "referência", "odontológico")  # fmt: skip
STATUS_CONSULTA = {"agendada": 55, "realizada": 35, "cancelada": 5, "faltou": 5}
MOTIVOS_CONSULTA = (
    "Consulta de rotina", "Check-up anual", "Retorno", "Dor torácica",
    "Cefaleia persistente", "Acompanhamento de hipertensão",
    "Acompanhamento de diabetes", "Febre e tosse", "Dor lombar", "Dor abdominal",
    "Avaliação pré-operatória", "Pré-natal", "Renovação de receita",
    "Lesão no joelho", "Tontura", "Ansiedade", "Alergia respiratória",
    "Avaliação de exames",
)  # fmt: skip
TIPOS_EXAME = (
    "Hemograma completo", "Raio-X de tórax", "Tomografia computadorizada",
    "Ultrassonografia abdominal", "PCR", "Eletrocardiograma (ECG)",
    "Ressonância magnética", "Glicemia de jejum", "Colesterol total e frações",
    "Urina tipo 1", "TSH", "Creatinina", "Ecocardiograma", "Mamografia",
    "Endoscopia digestiva alta", "Hemoglobina glicada", "Teste ergométrico",
)  # fmt: skip
RESULTADOS = {
    "Normal": 45, "Dentro dos valores de referência": 25,
    "Alterado - repetir em 30 dias": 10, "Alterado - encaminhar ao especialista": 8,
    "Inconclusivo - nova coleta": 2,
}  # fmt: skip
PENDING_RESULT = 0.10  # share of exams still waiting for a result
MOTIVOS_INTERNACAO = (
    "Pneumonia", "Cirurgia eletiva", "Fratura de fêmur", "Parto",
    "Insuficiência cardíaca descompensada", "Apendicite", "AVC isquêmico",
    "Infecção urinária complicada", "Observação pós-operatória", "Crise asmática",
    "Desidratação", "Colecistite", "Celulite infecciosa",
)  # fmt: skip
OPEN_STAY = 0.25  # spec 002: 20-30% of internações still open
STAY_MIN, STAY_MAX = timedelta(days=3), timedelta(days=10)
MAX_CONVENIOS = 3
HISTORY = timedelta(days=730)  # spec 002: events within a 2-year window


class Medico(SQLFactory):
    _table, _domain = "medicos", DOMAIN
    _natural_key = ("crm",)

    nome = Col(NAME)
    crm = Col(Indexed(DOMAIN, "medicos.crm", brazil.crm, brazil.crm_many))
    especialidade = Col(Choice(ESPECIALIDADES))
    telefone = Col(PHONE)


class Convenio(SQLFactory):
    _table, _domain = "convenios", DOMAIN
    _natural_key = ("cnpj",)

    nome = Col(Join(Choice(OPERADORAS), " ", Choice(PLANOS)))
    cnpj = Col(Indexed(DOMAIN, "convenios.cnpj", brazil.cnpj, brazil.cnpj_many))
    tipo = Col(Weighted(TIPOS_CONVENIO))
    cobertura = Col(Choice(COBERTURAS))


class Paciente(SQLFactory):
    _table, _domain = "pacientes", DOMAIN
    _natural_key = ("cpf",)

    nome = Col(NAME)
    nascimento = Col(Day(-95 * 365, 0))
    cpf = Col(Indexed(DOMAIN, "pacientes.cpf", brazil.cpf, brazil.cpf_many))
    telefone = Col(PHONE)
    endereco = Col(ADDRESS)
    data_cadastro = Col(
        Moment(
            Latest(AsOf(-HISTORY), DayStart("nascimento")),
            AsOf(-timedelta(hours=1)),
        )
    )


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def _patients_with_room(g: Context, r: Any) -> tuple[sql.Composable, list[Any]]:
    return (
        sql.SQL(
            "(SELECT count(*) FROM pacientes_convenios pc WHERE pc.paciente_id = t.id)"
            " < %s"
        ),
        [MAX_CONVENIOS],
    )


def _not_held_yet(g: Context, r: Any) -> tuple[sql.Composable, list[Any]]:
    patient = g.parent(r.paciente_id, "pacientes")
    return (
        sql.SQL(
            "NOT EXISTS (SELECT 1 FROM pacientes_convenios pc "
            "WHERE pc.convenio_id = t.id AND pc.paciente_id = %s)"
        ),
        [patient.get("id")],
    )


class PacienteConvenio(SQLFactory):
    _table, _domain = "pacientes_convenios", DOMAIN
    _natural_key = ("paciente_id", "convenio_id")

    paciente_id = Parent("pacientes", where=_patients_with_room)
    convenio_id = Parent("convenios", prefer_existing=True, where=_not_held_yet)
    numero_carteira = Col(Digits(15))
    validade = Col(Day(30, 3 * 365))


_CADASTRO = ParentCol("paciente_id", "data_cadastro", "pacientes")
_PATIENT_NOW = Latest(_CADASTRO, AsOf())
"""The patient's own "now": the data's as-of, or the registration when that is
later (a patient the stream registered at wall-clock time, given events by a
seed whose as-of is earlier), so no event predates ``data_cadastro``."""
_SINCE_CADASTRO = Moment(Latest(_CADASTRO, AsOf(-HISTORY)), _PATIENT_NOW)
"""An event in the last two years, never before its patient's data_cadastro."""


class Consulta(SQLFactory):
    _table, _domain = "consultas", DOMAIN

    class Params:
        # one state per status: Consulta.create(cancelada=True)
        agendada = Trait(status="agendada")
        realizada = Trait(status="realizada")
        cancelada = Trait(status="cancelada")
        faltou = Trait(status="faltou")

    paciente_id = Parent("pacientes", carry=("data_cadastro",))
    medico_id = Parent("medicos", prefer_existing=True)
    status = Col(Weighted(STATUS_CONSULTA))
    data = Col(
        Switch(
            "status",
            {"agendada": Moment(_PATIENT_NOW, Plus(_PATIENT_NOW, timedelta(days=60)))},
            default=_SINCE_CADASTRO,
        )
    )
    motivo = Col(Choice(MOTIVOS_CONSULTA))


class Exame(SQLFactory):
    _table, _domain = "exames", DOMAIN

    paciente_id = Parent("pacientes", carry=("data_cadastro",))
    tipo_exame = Col(Choice(TIPOS_EXAME))
    data = Col(_SINCE_CADASTRO)
    resultado = Col(Maybe(PENDING_RESULT, Weighted(RESULTADOS)))


def stay_length(g: Context) -> timedelta:
    span = int((STAY_MAX - STAY_MIN).total_seconds())
    return STAY_MIN + timedelta(seconds=g.randint(0, span))


_EARLIEST = (_CADASTRO, AsOf(-HISTORY))


class Internacao(SQLFactory):
    _table, _domain = "internacoes", DOMAIN

    class Meta:
        exclude = ("sem_alta", "duracao")

    class Params:
        # Internacao.create(aberta=True): still in hospital, no data_saida
        aberta = Trait(sem_alta=True)
        com_alta = Trait(sem_alta=False)

    paciente_id = Parent("pacientes", carry=("data_cadastro",))
    sem_alta = Col(Flag(OPEN_STAY))  # not discharged yet (the open share)
    duracao = Col(Span(STAY_MIN, STAY_MAX))
    data_entrada = Col(
        Switch(
            "sem_alta",
            {
                True: Moment(
                    Latest(*_EARLIEST, Plus(_PATIENT_NOW, -STAY_MAX)), _PATIENT_NOW
                )
            },
            # closed: discharged (entrada + duracao) by the patient's now
            default=Moment(
                Latest(*_EARLIEST),
                Latest(*_EARLIEST, Before(_PATIENT_NOW, "duracao")),
            ),
        )
    )
    data_saida = Col(EndAfter("data_entrada", "duracao", unless="sem_alta"))
    motivo = Col(Choice(MOTIVOS_INTERNACAO))
    quarto = Col(Join(Int(1, 8), Int(1, 40, 2), "-", Choice("AB")))
