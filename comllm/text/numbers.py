"""How numbers are written in prompts and read back.

Every value is written as one plain decimal (``4.1934``, ``297``, ``0.1``): no
thousands separators, no exponent in the canonical templates, so that a
value-aware tokenizer can map each number to one token. The readers also accept
exponents (``4.1934e+00``), leading zeros and a leading sign, so perturbed or
foreign prompts still parse.
"""

from __future__ import annotations

import math
import re

#: One number as it may appear in a prompt: sign, digits, optional decimals and exponent.
NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(NUMBER)
_WHOLE_RE = re.compile(rf"^\s*({NUMBER})\s*$")


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


def shortest(x: float, max_decimals: int = 10) -> str:
    """The shortest plain decimal that reads back as ``round(x, max_decimals)`` (for converted units)."""
    return compact(round(x, max_decimals), max_decimals)


def python_float(x: float, decimals: int = 4) -> str:
    """``str(float(round(x, decimals)))``: how the official Chinese format writes constants (``297.0``)."""
    return str(float(round(x, decimals)))


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
