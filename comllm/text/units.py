"""Units and numbers: how every value of a prompt is written and read back (renderers and parser).

**Units.** :data:`UNITS` maps each spelling a prompt may use (normalized by
:func:`norm_unit`) to a :class:`Unit`: its dimension, its base (time and rate units
are per slot or per second) and how many canonical units one of it is (``kbit``:
``1e-3`` Mbit). The canonical units are those of the state (:mod:`comllm.state`):
data Mbit, time slots, rate Mbit/slot, frequency GHz, density cycles/bit; the
device's nominal uplink is in Mbit/s and the slot length in s. Each value a prompt
writes with a unit is of a :data:`KINDS` entry (a style has one ``<kind>_unit``
field per kind it writes): :func:`factor` converts a canonical value into a unit for
the renderers, :func:`to_canonical` converts a read value back for the parser (time
and rate units of the other base go through the slot length).

**Numbers.** Every value is written as one plain decimal (``4.1934``, ``297``,
``0.1``): no thousands separators, no exponent in the canonical templates, so that
a value-aware tokenizer can map each number to one token. The readers also accept
exponents (``4.1934e+00``), leading zeros and a leading sign, so perturbed or
foreign prompts still parse. A :class:`Numbers` writes one prompt's numbers in one
format: :class:`FieldNumbers` for the field templates (``paper``, ``annotated``),
:class:`CompactNumbers` for the compact ones (module docstrings of
:mod:`comllm.text.english` and :mod:`comllm.text.compact`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from comllm.text.errors import TextError

# ------------------------------------------------------------------ numbers
#: One number as it may appear in a prompt: sign, digits, optional decimals and exponent.
NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(NUMBER)
_WHOLE_RE = re.compile(rf"^\s*({NUMBER})\s*$")
#: decimals of the constants (slot length, GHz, cycles/bit, penalty, uplink) and load-history counts
CONSTANT_DECIMALS = 4


def fixed(x: float, decimals: int) -> str:
    """``x`` with exactly ``decimals`` decimals (``fixed(3, 4) == "3.0000"``); never ``-0``."""
    s = f"{x:.{decimals}f}"
    return s[1:] if s.startswith("-") and float(s) == 0.0 else s


def compact(x: float, decimals: int = 4) -> str:
    """``x`` rounded to ``decimals`` decimals without trailing zeros (``41.8``, ``297``, ``0.1``)."""
    if float(x).is_integer() and abs(x) < 1e15:  # fast path: whole numbers (load history, 297 cycles/bit)
        return str(int(x))
    s = fixed(x, decimals)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def printed_decimals(x: np.ndarray, decimals: int) -> np.ndarray:
    """``float(fixed(v, decimals))`` of every ``v`` of ``x``: the value a number written with
    ``decimals`` decimals reads back as (:func:`compact` writes the same value), vectorised.

    ``rint(x * 10**decimals)`` is the correctly rounded count of units except within float error
    of a half, where Python's own formatting decides (the text's rule, exactly).
    """
    scale = 10.0**decimals
    c = np.asarray(x, dtype=np.float64) * scale
    out = np.rint(c)
    near = np.abs(c - np.floor(c) - 0.5) < 1e-6
    for idx in zip(*np.nonzero(near), strict=True):
        out[idx] = round(float(fixed(float(np.asarray(x)[idx]), decimals)) * scale)
    return out / scale


def shortest(x: float, max_decimals: int = 10) -> str:
    """The shortest plain decimal that reads back as ``round(x, max_decimals)`` (for converted units)."""
    return compact(round(x, max_decimals), max_decimals)


def python_float(x: float, decimals: int = 4) -> str:
    """``str(float(round(x, decimals)))``: how the official Chinese format writes constants (``297.0``)."""
    return str(float(round(x, decimals)))


def padded(s: str, decimals: int) -> str:
    """The number ``s`` with trailing zeros up to ``decimals`` decimals (never fewer digits than it has)."""
    whole, _, frac = s.partition(".")
    return f"{whole}.{frac.ljust(decimals, '0')}"


def scientific(x: float, digits: int) -> str:
    """``x`` in scientific notation with at most ``digits`` decimals in the mantissa, no trailing zeros."""
    mant, exp = f"{x:.{digits}e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{exp}"


def find_numbers(text: str) -> list[str]:
    """Every number in ``text``, in order, as written."""
    return _NUMBER_RE.findall(text)


def first_number(text: str) -> re.Match[str] | None:
    """The first number of ``text`` (a match, so the caller sees what precedes and follows it)."""
    return _NUMBER_RE.search(text)


def parse_number(text: str) -> float:
    """A whole string that is one number, as a float; ``ValueError`` otherwise (also for inf/nan)."""
    m = _WHOLE_RE.match(text)
    if m is None:
        raise ValueError(f"'{text}' is not a number")
    x = float(m.group(1))
    if not math.isfinite(x):
        raise ValueError(f"'{text}' is not a finite number")
    return x


class Numbers:
    """Writes one prompt's numbers in one format of :attr:`FORMATS` (a subclass per family of templates).

    ``quantity``: sizes, waits, rates, queues, estimates; ``constant``: GHz, cycles/bit,
    the slot length, the penalty, load-history counts; ``count``: whole counts. ``factor``
    converts from the canonical unit (:func:`factor`).
    """

    FORMATS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, fmt: str, decimals: int) -> None:
        if fmt not in self.FORMATS:
            raise TextError(f"unknown number format '{fmt}' (known: {', '.join(self.FORMATS)})")
        self.fmt = fmt
        self.d = decimals

    def quantity(self, x: float, factor: float = 1.0) -> str:
        raise NotImplementedError

    def constant(self, x: float, factor: float = 1.0) -> str:
        raise NotImplementedError

    def count(self, n: int) -> str:
        raise NotImplementedError


class FieldNumbers(Numbers):
    """The field templates' formats: ``fixed`` (canonical), ``strip``, ``padded``, ``sci``.

    ``fixed``: quantities with exactly ``decimals`` decimals, constants with at most
    ``max(decimals, CONSTANT_DECIMALS)`` and no trailing zeros; ``strip``: no trailing
    zeros anywhere; ``padded``: two more decimals everywhere, counts too; ``sci``:
    scientific notation (12 decimals at most). A value converted to another unit is
    the shortest decimal of it rounded to 10 decimals (padded in ``padded``).
    """

    FORMATS = ("fixed", "strip", "padded", "sci")

    def __init__(self, fmt: str, decimals: int) -> None:
        super().__init__(fmt, decimals)
        self.cd = max(decimals, CONSTANT_DECIMALS)

    def quantity(self, x: float, factor: float = 1.0) -> str:
        if self.fmt == "sci":
            return scientific(round(x * factor, 10), 12)
        if factor != 1.0:
            s = shortest(x * factor)
            return padded(s, self.d + 2) if self.fmt == "padded" else s
        if self.fmt == "strip":
            return compact(x, self.d)
        return fixed(x, self.d + (2 if self.fmt == "padded" else 0))

    def constant(self, x: float, factor: float = 1.0) -> str:
        if self.fmt == "sci":
            return scientific(round(x * factor, 10), 12)
        s = shortest(x * factor) if factor != 1.0 else compact(x, self.cd)
        return padded(s, self.cd + 2) if self.fmt == "padded" else s

    def count(self, n: int) -> str:
        return fixed(float(n), self.d + 2) if self.fmt == "padded" else str(int(n))


class CompactNumbers(Numbers):
    """The compact templates' formats: ``compact`` (canonical), ``fixed``, ``padded``, ``sci``.

    ``compact``: at most ``decimals`` (2, the value tokens' resolution) decimals, no
    trailing zeros; ``fixed``: exactly one more (finer than the value tokens' 0.01);
    ``padded``: exactly four more, counts too; ``sci``: 7 significant digits. Quantities
    and constants are written alike; a unit ``factor`` < 1 adds the decimals the value
    needs to keep its digits (0.297, not 0.3). Counts (deadline in slots, active tasks)
    stay whole numbers except in ``padded``.
    """

    FORMATS = ("compact", "fixed", "padded", "sci")

    def quantity(self, x: float, factor: float = 1.0) -> str:
        y = float(x) * factor if factor != 1.0 else float(x)
        d = self.d + _shift(factor)
        if self.fmt == "compact":
            return compact(y, d)
        if self.fmt == "fixed":
            return fixed(y, d + 1)
        if self.fmt == "padded":
            return fixed(y, d + 4)
        s = scientific(y, 6)
        return "0" + s[s.index("e") :] if float(s) == 0 else s  # never -0e+00

    constant = quantity

    def count(self, n: int) -> str:
        return fixed(float(n), self.d + 4) if self.fmt == "padded" else str(int(n))


def _shift(factor: float) -> int:
    """Extra decimals a value converted by ``factor`` < 1 needs to keep its digits (0.297, not 0.3)."""
    return max(0, math.ceil(-math.log10(factor) - 1e-9)) if 0 < factor < 1 else 0


# -------------------------------------------------------------------- units
@dataclass(frozen=True)
class Unit:
    """A unit: ``factor`` canonical units of ``dim`` per one of it, per ``base`` ('', 'slot' or 's')."""

    dim: str  # data | time | rate | freq | density
    base: str  # time and rate units: 'slot' or 's' (they need the slot length to convert); '' otherwise
    factor: float


#: Units: normalized spelling -> :class:`Unit`.
UNITS: dict[str, Unit] = {}


def _units(dim: str, base: str, factor: float, *names: str) -> None:
    for n in names:
        UNITS[n] = Unit(dim, base, factor)


_units("data", "", 1.0, "mbit", "mbits", "mb", "megabit", "megabits")
_units("data", "", 1e-3, "kbit", "kbits", "kb", "kilobit", "kilobits")
_units("data", "", 1e-6, "bit", "bits")
_units("data", "", 1e3, "gbit", "gbits")
_units("time", "slot", 1.0, "slot", "slots", "时间槽", "time slot", "time slots")
_units("time", "s", 1.0, "s", "sec", "secs", "second", "seconds", "秒")
_units("time", "s", 1e-3, "ms", "msec", "millisecond", "milliseconds", "毫秒")
_units("rate", "slot", 1.0, "mbit/slot", "mbits/slot", "mb/slot", "mbit/时间槽", "mbits/时间槽", "mbit per slot")
_units("rate", "slot", 1e-3, "kbit/slot", "kbits/slot", "kbit per slot")
_units("rate", "s", 1.0, "mbit/s", "mbits/s", "mbps", "mb/s", "mbit per second")
_units("rate", "s", 1e-3, "kbit/s", "kbits/s", "kbps")
_units("freq", "", 1.0, "ghz")
_units("freq", "", 1e-3, "mhz")
_units("density", "", 1.0, "cycles/bit", "cycles per bit", "cycle/bit", "cpb")
_units("density", "", 1e3, "gcycles/mbit", "megacycles/kbit")

#: The kinds of values written with a unit: kind -> (dimension, base of the canonical unit).
#: data: task size, queued and incoming Mbit; time: max delay, waits, estimates (slots);
#: rate: the upload rate (Mbit/slot); link: the device's nominal uplink (Mbit/s);
#: slot: the slot length (s); freq: CPU GHz; density: cycles/bit.
KINDS: dict[str, tuple[str, str]] = {
    "data": ("data", ""),
    "time": ("time", "slot"),
    "rate": ("rate", "slot"),
    "link": ("rate", "s"),
    "slot": ("time", "s"),
    "freq": ("freq", ""),
    "density": ("density", ""),
}
#: how error messages name a dimension
DIMENSION_WORDS = {
    "data": "a data size",
    "time": "a time",
    "rate": "a data rate",
    "freq": "a frequency",
    "density": "a computation density",
}
#: the unit of the fresh-view counts (``4 tasks``; optional when read)
COUNT_UNITS = ("task", "tasks", "个任务", "个")


def norm_unit(text: str) -> str:
    """Normalize a unit for lookup in :data:`UNITS`."""
    t = unicodedata.normalize("NFKC", text).lower().strip(" \t.,;:")
    return re.sub(r"\s*/\s*", "/", re.sub(r"\s+", " ", t))


def factor(kind: str, unit: str, slot_s: float) -> float:
    """What a canonical value of ``kind`` is multiplied by to be written in ``unit`` ('': the canonical one)."""
    if unit == "":
        return 1.0
    dim, base = KINDS[kind]
    u = UNITS.get(norm_unit(unit))
    if u is None or u.dim != dim:
        raise TextError(f"unknown unit '{unit}' for {DIMENSION_WORDS[dim]}")
    k = 1.0 / u.factor
    if u.base == base:
        return k
    if dim == "time" and base == "slot":  # slots -> seconds
        return slot_s * k
    if dim == "rate":  # Mbit/slot -> per second, or Mbit/s -> per slot
        return k / slot_s if base == "slot" else k * slot_s
    raise TextError(f"unit '{unit}' cannot write {DIMENSION_WORDS[dim]} in seconds")


def to_canonical(x: float, unit: Unit | None, kind: str, slot_s: float) -> float:
    """A value ``x`` read in ``unit`` (``None``: the canonical one) as a canonical value of ``kind``.

    A converted value is rounded to 10 decimals so that e.g. 4193.4 kbit reads back as
    4.1934 Mbit exactly. ``ValueError`` for a unit of another dimension, and for a
    duration in slots where seconds are wanted (the slot length itself).
    """
    dim, base = KINDS[kind]
    if unit is None:
        return x
    if unit.dim != dim:
        raise ValueError(f"unit of {unit.dim}, not {dim}")
    if unit.base == base:
        return x if unit.factor == 1.0 else round(x * unit.factor, 10)
    if dim == "time" and base == "slot":  # seconds -> slots
        return round(x * unit.factor / slot_s, 10)
    if dim == "rate":
        return round(x * unit.factor * slot_s, 10) if base == "slot" else round(x * unit.factor / slot_s, 10)
    raise ValueError("a duration in slots where seconds are wanted")
