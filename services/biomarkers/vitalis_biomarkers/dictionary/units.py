"""UCUM units read and converted with pint.

The dictionary speaks UCUM (``mg/dL``, ``10*3/uL``, ``u[IU]/mL``, ``mL/min/{1.73_m2}``); pint does the
arithmetic. :class:`Units` translates a UCUM code into a pint expression once, with a registry that
knows the few units clinical chemistry needs beyond pint's own (international units and
equivalents as dimensions of their own, so that nothing converts them by accident), and normalises
the spellings lab reports print (``mg/dl``, ``µmol/L``, ``x10E3/uL``) to UCUM.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

import pint

# Annotations are free text in UCUM; only these mean something to the dictionary.
KNOWN_ANNOTATIONS: Final = frozenset({"{1.73_m2}", "{ratio}", "{cells}", "{score}"})
_POWER_OF_TEN = re.compile(r"10\*(?P<exponent>-?\d+)")
_ANNOTATION = re.compile(r"\{[^{}]*\}")
_SYMBOL = re.compile(r"\[[A-Za-z_]+\]|[A-Za-z_]+")
_SYMBOLS_TO_PINT: Final = {
    "[IU]": "IU",
    "[iU]": "IU",
    "a": "year",
    "%": "percent",
}
_PRINTED_POWER = re.compile(
    r"^(?:x|\u00d7|\*)?\s*10\s*(?:\^|e|E|\*\*|\*)\s*(?P<exponent>\d+)\s*/", re.IGNORECASE
)
_PRINTED_WORDS: Final = (
    (re.compile(r"µ|μ"), "u"),
    (re.compile(r"\bmcg\b", re.IGNORECASE), "ug"),
    (re.compile(r"\bmcmol\b", re.IGNORECASE), "umol"),
    (re.compile(r"\bmmol/mol\b", re.IGNORECASE), "mmol/mol"),
    (re.compile(r"^(?P<prefix>[mu]?)IU/", re.IGNORECASE), r"\g<prefix>[IU]/"),
    (re.compile(r"^mEq/", re.IGNORECASE), "meq/"),
)


class UnknownUnitError(ValueError):
    """A text that is not a UCUM unit this registry understands."""


class Units:
    """A pint registry speaking the UCUM codes of clinical chemistry."""

    def __init__(self) -> None:
        """Build the registry; do it once per process (it is not cheap)."""
        registry: pint.UnitRegistry[Any] = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
        registry.define("international_unit = [international_unit] = IU")
        registry.define("equivalent = [equivalent] = eq")
        self._registry = registry
        self._cache: dict[str, pint.Quantity[Any]] = {}

    @property
    def registry(self) -> pint.UnitRegistry[Any]:
        """The underlying pint registry."""
        return self._registry

    def quantity(self, ucum: str) -> pint.Quantity[Any]:
        """One of ``ucum`` as a pint quantity; :class:`UnknownUnitError` when it is not a known unit."""
        cached = self._cache.get(ucum)
        if cached is not None:
            return cached
        quantity = self._parse(ucum)
        self._cache[ucum] = quantity
        return quantity

    def _parse(self, ucum: str) -> pint.Quantity[Any]:
        text = ucum.strip()
        if not text or text != ucum or " " in text:
            raise UnknownUnitError(f"{ucum!r} is not a UCUM unit")
        for annotation in _ANNOTATION.findall(text):
            if annotation not in KNOWN_ANNOTATIONS:
                raise UnknownUnitError(f"{ucum!r} carries the unknown annotation {annotation}")
        text = re.sub(r"/\{[^{}]*\}", "", text)
        text = _ANNOTATION.sub("1", text)
        if text == "%":
            text = "percent"
        text = _POWER_OF_TEN.sub(lambda match: f"1e{match['exponent']}", text)
        text = _SYMBOL.sub(lambda match: _SYMBOLS_TO_PINT.get(match.group(0), match.group(0)), text)
        try:
            parsed: pint.Quantity[Any] = self._registry.Quantity(self._registry.parse_expression(text))
        except (pint.errors.PintError, AttributeError, SyntaxError, TypeError, ValueError) as error:
            raise UnknownUnitError(f"{ucum!r} is not a UCUM unit") from error
        return parsed

    def is_valid(self, ucum: str) -> bool:
        """Whether ``ucum`` parses."""
        try:
            self.quantity(ucum)
        except UnknownUnitError:
            return False
        return True

    def factor(self, from_unit: str, to_unit: str, *, molecular_weight: float | None = None) -> float | None:
        """The factor with ``value_in_to = value_in_from * factor``, or None when none can be derived.

        With ``molecular_weight`` (g/mol), amounts of substance and masses convert into each other.
        """
        source = self.quantity(from_unit)
        target = self.quantity(to_unit)
        candidates = [source]
        if molecular_weight is not None:
            weight = self._registry.Quantity(molecular_weight, "g/mol")
            candidates += [source * weight, source / weight]
        for candidate in candidates:
            if candidate.dimensionality == target.dimensionality:
                converted = candidate.to(target.units)
                return float(converted.magnitude / target.magnitude)
        return None

    def normalize(self, printed: str, *, known: Iterable[str] = ()) -> str | None:
        """The UCUM code of a unit as printed (``mg/dl`` → ``mg/dL``, ``µmol/L`` → ``umol/L``).

        ``known`` are the codes to prefer (the dictionary's): a printed unit equal to one of them
        but for letter case becomes that code. Returns None when the text is no unit.
        """
        text = printed.strip().replace(" ", "")
        if not text:
            return None
        for pattern, replacement in _PRINTED_WORDS:
            text = pattern.sub(replacement, text)
        text = _PRINTED_POWER.sub(lambda match: f"10*{match['exponent']}/", text)
        text = text.replace("^", "*")
        known_codes = list(known)
        by_folded = {code.casefold(): code for code in known_codes}
        if text.casefold() in by_folded:
            return by_folded[text.casefold()]
        fixed_case = re.sub(r"/l$", "/L", text.replace("dl", "dL").replace("ml", "mL"))
        candidates = [fixed_case, text]
        for candidate in candidates:
            if self.is_valid(candidate):
                return candidate
        return None
