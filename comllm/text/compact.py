"""Compact English templates tuned for the embedded value-token model.

Short words, one line per action, every number a plain decimal with at most 2
decimals (the value tokens' resolution), no thousands separators.

* ``estimates-compact``: only each action's estimated latency (DESIGN §3), one
  line per action. The easy signal; a model that reads it is the greedy oracle.
* ``annotated-compact``: the raw state (task, device, every server's type, CPU,
  active count, queued Mbit and load history) with each action's estimate
  placed FIRST on its line, so the argmin the estimates teach stays easy to
  read next to the raw numbers (the estimate last on the line stalled training,
  see notes/lm-on-cpu.md).
* ``raw-compact``: the same lines without the estimates: the model must learn
  the cost model itself.

Example (``annotated-compact``, 2 servers)::

    task 4.19 Mbit deadline 10 rate 1.4 Mbit/slot txwait 0 slot 0.1 s penalty 100
    local: est 7.98 | wait 3 cpu 2.5 GHz density 297
    server 1: est 4.34 | high cpu 41.8 GHz active 0 queue 0 Mbit load 2 0 1 1 0 1 0 2 1 2
    server 2: est 9.12 | std cpu 30 GHz active 2 queue 7.27 Mbit load 3 3 0 3 4 2 0 0 3 3
    answer:

Answers are the package's (``local``, ``server K``), written after a space.
Each action has exactly one line, in action order, starting at line
:attr:`action_line_start` (an auxiliary training head reads the line ends).
These templates do not carry the whole state back (``parse_prompt`` is not
offered); :meth:`quantize` rounds to the 2 decimals they print.

Every choice of wording, unit, number format and order is a field of a
:class:`CompactStyle`; a template's default style writes the text above byte
for byte (checkpoints and data depend on it). The robustness perturbations
(:mod:`comllm.text.perturb`) are other styles: ``template.with_style(style)``.
With a ``server_order`` the server lines move (ids kept), so
:attr:`action_line_start` + a no longer finds action a's line.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from comllm.cost import action_costs
from comllm.state import StateBatch, TaskState
from comllm.text.numbers import compact as _num
from comllm.text.numbers import fixed
from comllm.text.template import Template, quantize_state

#: The words of the compact prompts: key -> spellings, the canonical one first (the
#: ``paraphrase`` perturbation draws among the others). Server types are keyed by their
#: scenario name. The answer vocabulary (``local``, ``server K``) and the ``answer:`` cue
#: are not labels: they are never changed.
WORDS: dict[str, tuple[str, ...]] = {
    "task": ("task", "input", "job size", "payload"),
    "deadline": ("deadline", "due", "limit", "expiry"),
    "rate": ("rate", "uplink", "bandwidth", "throughput"),
    "txwait": ("txwait", "txdelay", "send delay", "tx hold"),
    "slot": ("slot", "tick", "step", "period"),
    "penalty": ("penalty", "drop cost", "fine", "forfeit"),
    "est": ("est", "estimate", "latency", "expected"),
    "wait": ("wait", "waiting", "lag", "stall"),
    "cpu": ("cpu", "clock", "freq", "speed"),
    "density": ("density", "cycles", "complexity", "intensity"),
    "active": ("active", "busy", "running", "tasks"),
    "queue": ("queue", "backlog", "queued", "pending"),
    "load": ("load", "history", "recent", "past use"),
    "high-performance": ("high", "fast", "hi", "perf"),
    "standard": ("std", "standard", "mid", "normal"),
    "energy-saving": ("eco", "slow", "low", "saver"),
}
_tokens = [t for ws in WORDS.values() for w in ws for t in w.split()]
assert len(_tokens) == len(set(_tokens)), "a word of the compact labels is used twice"
assert not {"local", "server", "answer"} & set(_tokens)

#: Attributes of the task line, the local line and the server lines, in canonical order.
TASK_ATTRS: tuple[str, ...] = ("task", "deadline", "rate", "txwait", "slot", "penalty")
LOCAL_ATTRS: tuple[str, ...] = ("est", "wait", "cpu", "density")
SERVER_ATTRS: tuple[str, ...] = ("est", "type", "cpu", "density", "active", "queue", "load")

#: Units: spelling -> factor from the canonical unit ('' = the canonical unit, not written).
#: Time units (deadline, waits, estimates: slots) and Mbit/s (rate) need the slot length.
DATA_UNITS = {"Mbit": 1.0, "kbit": 1e3}
TIME_UNITS = ("", "ms", "s")
RATE_UNITS = {"Mbit/slot": 1.0, "kbit/slot": 1e3, "Mbit/s": None}
FREQ_UNITS = {"GHz": 1.0, "MHz": 1e3}
DENSITY_UNITS = {"": 1.0, "Gcycles/Mbit": 1e-3}
SLOT_UNITS = {"s": 1.0, "ms": 1e3}

#: Number formats: ``compact`` (canonical: at most 2 decimals, no trailing zeros), ``fixed``
#: (exactly 3 decimals: trailing zeros, finer than the value tokens' 0.01), ``padded``
#: (exactly 6 decimals, counts too), ``sci`` (scientific notation, 7 significant digits).
#: Counts (deadline in slots, active tasks) stay whole numbers except in ``padded``.
NUMBER_FORMATS = ("compact", "fixed", "padded", "sci")


@dataclass(frozen=True)
class CompactStyle:
    """Every rendering choice of the compact templates; the default writes the canonical text.

    ``labels`` maps keys of :data:`WORDS` to the word written (default: the canonical
    one). ``*_attrs`` are the attributes of each line in the order written (an attribute
    the template does not write is skipped). ``server_order`` is a permutation of
    server indices (ids are kept, only the lines move; ``local`` stays first); ``None``
    keeps 1..N. Units and ``numbers`` are spellings of :data:`DATA_UNITS` etc. and
    :data:`NUMBER_FORMATS`.
    """

    labels: dict[str, str] = field(default_factory=dict)
    data_unit: str = "Mbit"
    time_unit: str = ""
    rate_unit: str = "Mbit/slot"
    freq_unit: str = "GHz"
    density_unit: str = ""
    slot_unit: str = "s"
    numbers: str = "compact"
    task_attrs: tuple[str, ...] = TASK_ATTRS
    local_attrs: tuple[str, ...] = LOCAL_ATTRS
    server_attrs: tuple[str, ...] = SERVER_ATTRS
    server_order: tuple[int, ...] | None = None

    def label(self, key: str) -> str:
        return self.labels.get(key, WORDS[key][0])


def _shift(factor: float) -> int:
    """Extra decimals a value converted by ``factor`` < 1 needs to keep its digits (0.297, not 0.3)."""
    return max(0, math.ceil(-math.log10(factor) - 1e-9)) if 0 < factor < 1 else 0


class _Numbers:
    """Writes numbers in one :data:`NUMBER_FORMATS` format; the canonical one is ``compact(x, 2)``."""

    def __init__(self, fmt: str) -> None:
        if fmt not in NUMBER_FORMATS:
            raise ValueError(f"unknown number format '{fmt}' (known: {', '.join(NUMBER_FORMATS)})")
        self.fmt = fmt

    def value(self, x: float, factor: float = 1.0) -> str:
        """A value (size, wait, rate, constant, estimate, load count) in a unit ``factor`` x the canonical one."""
        y = float(x) * factor if factor != 1.0 else float(x)
        d = 2 + _shift(factor)
        if self.fmt == "compact":
            return _num(y, d)
        if self.fmt == "fixed":
            return fixed(y, d + 1)
        if self.fmt == "padded":
            return fixed(y, d + 4)
        mant, exp = f"{y:.6e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
        return f"{'0' if float(mant) == 0 else mant}e{exp}"

    def count(self, n: int) -> str:
        """A whole count (deadline in slots, active tasks)."""
        return fixed(float(n), 6) if self.fmt == "padded" else str(int(n))


def estimates(state: TaskState) -> np.ndarray:
    """Estimated latency (slots) of every action of ``state``, shape ``(N + 1,)`` (DESIGN §3)."""
    return action_costs(StateBatch.from_states([state]))[0]


class _Compact(Template):
    lang = "en"
    decimals = 2
    carries_state = False
    with_estimates = True
    with_raw = True

    def __init__(self, style: CompactStyle | None = None) -> None:
        self.style = style if style is not None else self.default_style()

    @classmethod
    def default_style(cls) -> CompactStyle:
        """The canonical style, with only the attributes this template writes."""

        def keep(attrs: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(a for a in attrs if (a == "est" and cls.with_estimates) or (a != "est" and cls.with_raw))

        return CompactStyle(
            task_attrs=keep(TASK_ATTRS), local_attrs=keep(LOCAL_ATTRS), server_attrs=keep(SERVER_ATTRS)
        )

    def with_style(self, style: CompactStyle) -> "_Compact":
        """This template writing in ``style``."""
        out = copy.copy(self)
        out.style = style
        return out

    @property
    def action_line_start(self) -> int:
        """Index of the prompt line of action 0 (local); action ``a`` is on line ``action_line_start + a``

        (in the canonical server order; a ``server_order`` moves the server lines)."""
        return 1 if self.with_raw else 0

    def quantize(self, state: TaskState) -> TaskState:
        return quantize_state(state, self.decimals)

    def render_prompt(self, state: TaskState) -> str:
        st = self.style
        num = _Numbers(st.numbers)
        est = estimates(state) if self.with_estimates else None
        slot = state.slot_s
        time_f = {"": 1.0, "ms": slot * 1e3, "s": slot}[st.time_unit]
        data_f = DATA_UNITS[st.data_unit]
        rate_f = RATE_UNITS[st.rate_unit]
        rate_f = 1.0 / slot if rate_f is None else rate_f
        freq_f = FREQ_UNITS[st.freq_unit]
        dens_f = DENSITY_UNITS[st.density_unit]

        def val(x: float, factor: float = 1.0, unit: str = "") -> str:
            return f"{num.value(x, factor)} {unit}" if unit else num.value(x, factor)

        def time(x: float) -> str:
            return val(x, time_f, st.time_unit)

        def attrs(order: tuple[str, ...], values: dict[str, str]) -> list[str]:
            # an attribute not in ``values`` is not written (not by this template, or a server's
            # density equal to the device's)
            keys = [k for k in order if k in values]
            out = [values[k] if k == "type" else f"{st.label(k)} {values[k]}" for k in keys]
            if len(keys) > 1 and keys[0] == "est":
                out[0] += " |"  # the bar ends an estimate written first, before the raw attributes
            return out

        def action_line(who: str, values: dict[str, str]) -> str:
            parts = attrs(st.local_attrs if who == "local" else st.server_attrs, values)
            return f"{who}: " + " ".join(parts) if parts else f"{who}:"

        def with_est(k: int, values: dict[str, str]) -> dict[str, str]:
            return {"est": time(est[k]), **values} if est is not None else values

        lines = []
        if self.with_raw:
            task = {
                "task": val(state.task_size, data_f, st.data_unit),
                "deadline": num.count(state.max_delay) if st.time_unit == "" else time(state.max_delay),
                "rate": val(state.upload_rate, rate_f, st.rate_unit),
                "txwait": time(state.tx_wait),
                "slot": val(slot, SLOT_UNITS[st.slot_unit], st.slot_unit),
                "penalty": val(state.drop_penalty),
            }
            lines.append(" ".join(attrs(st.task_attrs, task)))
        local = {}
        if self.with_raw:
            local = {
                "wait": time(state.local_wait),
                "cpu": val(state.device_ghz, freq_f, st.freq_unit),
                "density": val(state.device_cycles_per_bit, dens_f, st.density_unit),
            }
        lines.append(action_line("local", with_est(0, local)))
        order = st.server_order if st.server_order is not None else range(state.n_servers)
        for i in order:
            s, j = state.servers[i], i + 1
            raw = {}
            if self.with_raw:
                raw = {
                    "type": st.label(s.type) if s.type in WORDS else s.type,
                    "cpu": val(s.cpu_ghz, freq_f, st.freq_unit),
                }
                if s.cycles_per_bit != state.device_cycles_per_bit:
                    raw["density"] = val(s.cycles_per_bit, dens_f, st.density_unit)
                raw["active"] = num.count(s.active)
                raw["queue"] = val(s.queued_mbit, data_f, st.data_unit)
                raw["load"] = " ".join(num.value(h) for h in s.history)
            lines.append(action_line(f"server {j}", with_est(j, raw)))
        lines.append("answer:")
        return "\n".join(lines)


class EstimatesCompact(_Compact):
    name = "estimates-compact"
    with_raw = False
    description = "each action's estimated latency only, one short line per action (embedded model)"


class AnnotatedCompact(_Compact):
    name = "annotated-compact"
    description = "raw state, each action's estimated latency first on its line (embedded model)"


class RawCompact(_Compact):
    name = "raw-compact"
    with_estimates = False
    description = "raw state only, one short line per action (embedded model)"


COMPACT_TEMPLATES = (EstimatesCompact(), AnnotatedCompact(), RawCompact())


def _register() -> None:
    try:
        from comllm.text import register_template
    except ImportError:  # the registry is not there (yet): the classes still work on their own
        return
    for t in COMPACT_TEMPLATES:
        register_template(t)


_register()
