"""The retail product catalogue: product names from an index, unique by construction.

A name is kind + brand + variant + size (+ packaging) within one category;
index ``n`` maps bijectively onto those combinations (round-robin over
categories, then an affine permutation inside the category), and past the
last combination a product line number keeps names unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import gcd, prod
from typing import Any


@dataclass(frozen=True)
class Category:
    name: str
    prefix: str
    unit: str
    cost: tuple[float, float]
    kinds: tuple[str, ...]
    brands: tuple[str, ...]
    variants: tuple[str, ...]
    sizes: tuple[str, ...]

    @cached_property
    def size(self) -> int:
        return prod(
            len(x)
            for x in (self.kinds, self.brands, self.variants, self.sizes, PACKAGING)
        )

    @cached_property
    def step(self) -> int:
        for candidate in (7919, 104729, 15485863, 32452843):
            if gcd(candidate, self.size) == 1:
                return candidate
        return 1

    def name_at(self, j: int) -> str:
        cycle, k = divmod(j, self.size)
        k = (self.step * k + 97) % self.size
        parts = []
        for options in (self.kinds, self.brands, self.variants, self.sizes, PACKAGING):
            k, i = divmod(k, len(options))
            parts.append(options[i])
        name = " ".join(p for p in parts if p)
        return name if cycle == 0 else f"{name} - linha {cycle + 1}"

    def names_at(self, js: Any) -> Any:
        """:meth:`name_at` over a NumPy array of indices (object array of str)."""
        import numpy as np

        cycle, k = np.divmod(js.astype(np.int64), self.size)
        k = (self.step * k + 97) % self.size
        out = np.empty(len(js), dtype=object)
        out[:] = ""
        for options in (self.kinds, self.brands, self.variants, self.sizes, PACKAGING):
            k, i = np.divmod(k, len(options))
            shown = np.array([f" {o}" if o else "" for o in options], dtype=object)
            out = out + shown[i]
        out = np.array([name[1:] for name in out.tolist()], dtype=object)
        later = cycle > 0
        if later.any():
            out[later] = out[later] + " - linha " + (cycle[later] + 1).astype(str)
        return out


PACKAGING = ("", "Fardo com 6", "Caixa com 12", "Kit com 3", "Refil",
             "Embalagem econômica")  # fmt: skip

CATEGORIES: tuple[Category, ...] = (
    Category(
        "Alimentos", "ALI", "un", (2.5, 35.0),
        ("Arroz", "Feijão", "Macarrão", "Açúcar", "Café", "Farinha de trigo",
         "Óleo de soja", "Leite em pó", "Biscoito", "Molho de tomate", "Aveia",
         "Achocolatado"),
        ("Camil", "Tio João", "Kicaldo", "União", "Pilão", "Melitta", "Dona Benta",
         "Soya", "Nestlé", "Piraquê", "Quero", "Vitarella", "Quaker", "Toddy"),
        ("Tradicional", "Integral", "Orgânico", "Premium", "Light", "Extra"),
        ("500g", "1kg", "2kg", "5kg"),
    ),
    Category(
        "Bebidas", "BEB", "un", (1.5, 15.0),
        ("Refrigerante", "Suco", "Água mineral", "Cerveja", "Energético",
         "Chá gelado", "Água de coco"),
        ("Coca-Cola", "Guaraná Antarctica", "Del Valle", "Crystal", "Skol", "Brahma",
         "Red Bull", "Leão", "Ades", "Heineken", "Itubaína", "Kero Coco"),
        ("Original", "Zero", "Lata", "Garrafa", "Sem gás", "Laranja", "Uva"),
        ("350ml", "600ml", "1L", "1,5L", "2L"),
    ),
    Category(
        "Limpeza", "LIM", "un", (1.8, 40.0),
        ("Detergente", "Sabão em pó", "Amaciante", "Desinfetante", "Água sanitária",
         "Esponja", "Limpador multiuso", "Lustra-móveis"),
        ("Ypê", "Omo", "Comfort", "Veja", "Qboa", "Scotch-Brite", "Pinho Sol",
         "Brilhante", "Minuano", "Limpol"),
        ("Neutro", "Limão", "Lavanda", "Concentrado", "Coco", "Original"),
        ("500ml", "1L", "2L", "5L", "1kg"),
    ),
    Category(
        "Higiene", "HIG", "un", (1.5, 30.0),
        ("Sabonete", "Shampoo", "Condicionador", "Creme dental", "Desodorante",
         "Papel higiênico", "Fio dental", "Enxaguante bucal"),
        ("Dove", "Palmolive", "Colgate", "Oral-B", "Rexona", "Nivea", "Seda",
         "Pantene", "Neve", "Personal", "Listerine"),
        ("Original", "Hidratação", "Suave", "Sensitive", "Men", "Frescor"),
        ("90g", "200ml", "350ml", "400ml", "12 unidades"),
    ),
    Category(
        "Papelaria", "PAP", "un", (1.0, 25.0),
        ("Caderno", "Caneta", "Lápis", "Borracha", "Cola", "Marca-texto", "Fichário"),
        ("Tilibra", "BIC", "Faber-Castell", "Pilot", "Stabilo", "Tenaz", "Jandaia"),
        ("Azul", "Preto", "Colorido", "Escolar", "Profissional"),
        ("1 unidade", "caixa com 12", "pacote com 4"),
    ),
    Category(
        "Eletroportáteis", "ELE", "un", (60.0, 600.0),
        ("Liquidificador", "Ventilador", "Ferro de passar", "Cafeteira", "Air fryer",
         "Micro-ondas", "Batedeira", "Sanduicheira"),
        ("Mondial", "Arno", "Philips Walita", "Britânia", "Electrolux", "Oster",
         "Black+Decker", "Cadence"),
        ("110V", "220V", "Inox", "Turbo", "Digital"),
        ("Compacto", "Médio", "Grande"),
    ),
    Category(
        "Pet", "PET", "un", (8.0, 180.0),
        ("Ração para cães", "Ração para gatos", "Areia higiênica", "Petisco"),
        ("Pedigree", "Whiskas", "Golden", "Premier", "Pipicat", "Special Dog",
         "Friskies"),
        ("Adulto", "Filhote", "Sênior", "Castrado", "Carne", "Frango"),
        ("1kg", "3kg", "10kg", "15kg"),
    ),
)  # fmt: skip


def product_at(n: int) -> tuple[Category, str]:
    """The ``n``-th product: its category and a name no other index shares."""
    category = CATEGORIES[n % len(CATEGORIES)]
    return category, category.name_at(n // len(CATEGORIES))


def names_many(ns: Any) -> Any:
    """The names of products ``ns`` (a NumPy array): :func:`product_at` per column."""
    import numpy as np

    out = np.empty(len(ns), dtype=object)
    which = ns % len(CATEGORIES)
    for c, category in enumerate(CATEGORIES):
        mine = which == c
        if mine.any():
            out[mine] = category.names_at(ns[mine] // len(CATEGORIES))
    return out


CAPACITY = sum(c.size for c in CATEGORIES)
"""Products before names need a product-line suffix (realistic names end there)."""
