"""comllm.text.units: the one table of units and number formats that the renderers and the parser share."""

from __future__ import annotations

import math

import numpy as np
import pytest

from comllm.text import TextError, get_template, parse_prompt
from comllm.text.units import (
    KINDS,
    UNITS,
    CompactNumbers,
    FieldNumbers,
    Unit,
    factor,
    norm_unit,
    parse_number,
    to_canonical,
)

#: the units each kind of value may be written in (every spelling of its dimension in UNITS)
CASES = [(kind, u) for kind, (dim, base) in KINDS.items() for u, spec in UNITS.items() if spec.dim == dim]


@pytest.mark.parametrize(("kind", "unit"), CASES)
@pytest.mark.parametrize("slot_s", [0.1, 0.05, 1.0, 0.001, 1.7])
def test_a_value_written_in_any_unit_reads_back(kind: str, unit: str, slot_s: float) -> None:
    dim, base = KINDS[kind]
    spec = UNITS[unit]
    if kind == "slot" and spec.base == "slot":  # the slot length in slots: neither written nor read
        with pytest.raises(TextError):
            factor(kind, unit, slot_s)
        with pytest.raises(ValueError):
            to_canonical(1.0, spec, kind, slot_s)
        return
    for x in (0.0, 4.1934, 297.0, 0.0123, 12345.678):
        written = x * factor(kind, unit, slot_s)
        assert math.isclose(to_canonical(written, spec, kind, slot_s), x, rel_tol=1e-9, abs_tol=1e-9)


def test_the_factors_are_the_constants_the_templates_were_written_with() -> None:
    """Byte-identical prompts need the very floats of before: reciprocals of powers of ten are exact."""
    slot = 0.1
    assert factor("data", "kbit", slot) == 1e3 and factor("data", "Mbit", slot) == 1.0
    assert factor("time", "slots", slot) == 1.0 and factor("time", "", slot) == 1.0
    assert factor("time", "s", slot) == slot and factor("time", "ms", slot) == slot * 1e3
    assert factor("rate", "kbit/slot", slot) == 1e3 and factor("rate", "Mbit/s", slot) == 1.0 / slot
    assert factor("freq", "MHz", slot) == 1e3 and factor("density", "Gcycles/Mbit", slot) == 1e-3
    assert factor("link", "kbit/s", slot) == 1e3 and factor("link", "Mbps", slot) == 1.0
    assert factor("slot", "ms", slot) == 1e3 and factor("slot", "s", slot) == 1.0
    for spec in UNITS.values():
        assert 1.0 / (1.0 / spec.factor) == spec.factor


def test_unknown_or_wrong_units_are_errors() -> None:
    with pytest.raises(TextError, match="unknown unit 'furlong' for a data size"):
        factor("data", "furlong", 0.1)
    with pytest.raises(TextError, match="unknown unit 'GHz' for a time"):
        factor("time", "GHz", 0.1)
    with pytest.raises(ValueError):
        to_canonical(1.0, Unit("freq", "", 1.0), "data", 0.1)
    assert norm_unit(" Mbit / Slot. ") == "mbit/slot" and UNITS[norm_unit("ＭＢＩＴ/S")].base == "s"


def test_the_parser_reads_through_the_same_table() -> None:
    t = get_template("paper")
    q = t.quantize(parse_prompt(t.render_prompt(get_template("paper").quantize(_state()))))
    text = t.render_prompt(q)
    assert parse_prompt(text.replace("4.1934 Mbit", "4193.4 kbit")) == q
    assert parse_prompt(text.replace("max delay: 10 slots", "max delay: 1 s")) == q  # slot 0.1 s
    assert parse_prompt(text.replace("uplink 14 Mbit/s", "uplink 1.4 Mbit/slot")) == q


@pytest.mark.parametrize("fmt", FieldNumbers.FORMATS)
def test_field_numbers(fmt: str) -> None:
    n = FieldNumbers(fmt, 4)
    expected = {
        "fixed": ("3.0000", "41.8", "2", "4193.4"),
        "strip": ("3", "41.8", "2", "4193.4"),
        "padded": ("3.000000", "41.800000", "2.000000", "4193.400000"),
        "sci": ("3e+00", "4.18e+01", "2", "4.1934e+03"),
    }[fmt]
    assert (n.quantity(3.0), n.constant(41.8), n.count(2), n.quantity(4.1934, 1e3)) == expected
    for s in (n.quantity(3.0), n.constant(41.8), n.quantity(4.1934, 1e3)):
        parse_number(s)


@pytest.mark.parametrize("fmt", CompactNumbers.FORMATS)
def test_compact_numbers(fmt: str) -> None:
    n = CompactNumbers(fmt, 2)
    expected = {
        "compact": ("3", "41.8", "2", "0.297"),
        "fixed": ("3.000", "41.800", "2", "0.297000"),
        "padded": ("3.000000", "41.800000", "2.000000", "0.297000000"),
        "sci": ("3e+00", "4.18e+01", "2", "2.97e-01"),
    }[fmt]
    assert (n.quantity(3.0), n.constant(41.8), n.count(2), n.quantity(297.0, 1e-3)) == expected
    assert CompactNumbers("sci", 2).quantity(-0.0) == "0e+00"


def test_unknown_number_format() -> None:
    with pytest.raises(TextError, match="unknown number format 'roman' \\(known: fixed, strip, padded, sci\\)"):
        FieldNumbers("roman", 4)
    with pytest.raises(TextError, match="known: compact, fixed, padded, sci"):
        CompactNumbers("fixed-ish", 2)


def _state():
    from tests.test_text_perturb import _example_state

    return _example_state()


def test_units_of_every_field_of_a_random_state_round_trip() -> None:
    from tests.fixtures.text_states import random_state

    rng = np.random.default_rng(5)
    for _ in range(20):
        s = random_state(rng, 3)
        for kind, value in (("data", s.task_size), ("time", s.local_wait), ("rate", s.upload_rate),
                            ("link", s.device_mbps), ("slot", s.slot_s)):  # fmt: skip
            for unit in ("kbit", "ms", "s", "Mbit/s", "kbit/slot", "kbit/s"):
                spec = UNITS[norm_unit(unit)]
                if spec.dim != KINDS[kind][0] or (kind == "slot" and spec.base == "slot"):
                    continue
                back = to_canonical(value * factor(kind, unit, s.slot_s), spec, kind, s.slot_s)
                assert math.isclose(back, value, rel_tol=1e-9, abs_tol=1e-9)
