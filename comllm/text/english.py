"""English templates: ``paper`` (raw state), ``annotated`` (raw state + per-action derived lines), ``estimates``.

``paper`` writes one line per field and one per server, units spelled out::

    A task just arrived at a mobile device. Reply "local" to compute it there or ...
    task size: 4.1934 Mbit
    max delay: 10 slots
    local CPU queue wait: 3.0000 slots
    transmission queue wait: 0.0000 slots
    upload rate: 1.4000 Mbit/slot
    slot duration: 0.1 s
    drop penalty: 100
    local device: CPU 2.5 GHz, density 297 cycles/bit, uplink 14 Mbit/s
    server 1: type high-performance, CPU 41.8 GHz, density 297 cycles/bit, active tasks 0, queued 0.0000 Mbit, load history 2 0 1 1 0 1 0 2 1 2

Sizes, waits, rates and queues have ``decimals`` decimals (4, like the official
format); constants (GHz, cycles/bit, slot length, penalty, load history) are
written without trailing zeros. A :class:`Style` holds every choice of wording,
unit, number format and order, so perturbations are styles (see
:mod:`comllm.text.perturb`) and the tolerant parser reads them all back.

The ``-v2`` templates (``paper-v2``, ``annotated-v2``, ``estimates-v2``) add the fresh
view (README, "Text and data"): after the device line the slot's arrivals (this task
included) and its undecided tasks (those whose decisions this one does not see), and in
each server line the Mbit still to send by the tasks bound for it in devices' uplinks
(``incoming``) and their count (``incoming tasks``); the names without ``-v2`` keep
writing what they wrote (shipped checkpoints were trained on them). ``paper-v2``::

    A task just arrived at a mobile device. Reply "local" to compute it there or ...
    task size: 4.1934 Mbit
    max delay: 10 slots
    local CPU queue wait: 3.0000 slots
    transmission queue wait: 0.0000 slots
    upload rate: 1.4000 Mbit/slot
    slot duration: 0.1 s
    drop penalty: 100
    local device: CPU 2.5 GHz, density 297 cycles/bit, uplink 14 Mbit/s
    tasks arriving this slot: 4 tasks
    undecided tasks this slot: 3 tasks
    server 1: type high-performance, CPU 41.8 GHz, density 297 cycles/bit, active tasks 0, queued 0.0000 Mbit, incoming 3.2000 Mbit, incoming tasks 2, load history 2 0 1 1 0
    server 2: type standard, CPU 30 GHz, density 297 cycles/bit, active tasks 2, queued 7.2731 Mbit, incoming 0.0000 Mbit, incoming tasks 0, load history 3 3 0 3 4
    server 3: type energy-saving, CPU 22 GHz, density 1200.5 cycles/bit, active tasks 5, queued 31.5000 Mbit, incoming 12.5000 Mbit, incoming tasks 3, load history 5 6 4.5 5 7

``annotated`` and ``estimates`` print the paper's one-step estimate
(:func:`comllm.cost.action_costs`, DESIGN §3); ``annotated-v2`` and ``estimates-v2``
print the incoming-aware one (``action_costs(batch, incoming=True)``: each server's
incoming Mbit counted as queued, the estimate of ``greedy:incoming``) and say so on a
line of their own (:data:`ESTIMATE_LINES`). ``annotated-v2`` is ``paper-v2`` with 2
decimals and no header, then::

    estimates: one-step latency in slots, each server's incoming Mbit counted as queued
    if local: service 0.84 Mbit/slot, wait 3.00, compute 4.98, est 7.98 slots
    if server 1: service 14.07 Mbit/slot, wait 0.00, upload 3.00, compute 0.53, est 3.52 slots
    if server 2: service 3.37 Mbit/slot, wait 0.00, upload 3.00, compute 3.41, est 6.40 slots
    if server 3: service 0.31 Mbit/slot, wait 0.00, upload 3.00, compute 157.79, est 160.78 slots

``estimates-v2``::

    estimates: one-step latency in slots, each server's incoming Mbit counted as queued
    slot: 4 tasks arriving, 3 undecided
    local: est 7.98
    server 1: est 3.52, incoming 3.20 Mbit, 2 tasks
    server 2: est 6.40, incoming 0.00 Mbit, 0 tasks
    server 3: est 160.78, incoming 12.50 Mbit, 3 tasks
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from comllm.state import TaskState
from comllm.text import vocab as V
from comllm.text.derived import action_terms
from comllm.text.numbers import compact, fixed, shortest
from comllm.text.template import CONSTANT_DECIMALS, Template

FIELD_ORDER: tuple[str, ...] = tuple(V.FIELDS)
SERVER_ATTR_ORDER: tuple[str, ...] = ("type", "cpu_ghz", "cycles_per_bit", "active", "queued_mbit", "history")
DEVICE_ATTR_ORDER: tuple[str, ...] = ("cpu_ghz", "cycles_per_bit", "uplink_mbps")
#: the ``-v2`` orders: the fresh view's slot counts after the device line, incoming traffic after the queue
FIELD_ORDER_V2: tuple[str, ...] = FIELD_ORDER + tuple(V.FRESH_FIELDS)
SERVER_ATTR_ORDER_V2: tuple[str, ...] = SERVER_ATTR_ORDER[:5] + tuple(V.FRESH_ATTRS) + SERVER_ATTR_ORDER[5:]

#: the line that says which estimate a ``-v2`` template prints (comllm.cost.action_costs)
ESTIMATE_LINES = {
    "one-step": "estimates: one-step latency in slots, the paper's formula",
    "incoming": "estimates: one-step latency in slots, each server's incoming Mbit counted as queued",
}

HEADER = (
    'A task just arrived at a mobile device. Reply "local" to compute it there or "server K" to offload it '
    "to edge server K, whichever gives the lowest latency within the max delay."
)

#: unit of each dimension: canonical spelling -> factor from the canonical unit (time units need the slot)
_DATA = {"Mbit": 1.0, "kbit": 1e3, "Mb": 1.0}
_TIME = ("slots", "ms", "s")
_RATE = {"Mbit/slot": 1.0, "kbit/slot": 1e3, "Mbit/s": None}
_FREQ = {"GHz": 1.0, "MHz": 1e3}
_DENSITY = {"cycles/bit": 1.0, "Gcycles/Mbit": 1e-3}
_LINK = {"Mbit/s": 1.0, "kbit/s": 1e3, "Mbps": 1.0}
_SLOT = {"s": 1.0, "ms": 1e3}
NUMBER_FORMATS = ("fixed", "strip", "padded", "sci")


@dataclass(frozen=True)
class Style:
    """Every rendering choice of the English field templates.

    ``labels`` maps field and attribute keys (:data:`vocab.FIELDS`, :data:`vocab.ATTRS`)
    to the label written (default: the canonical one). ``numbers``: ``fixed`` (the
    canonical format), ``strip`` (no trailing zeros), ``padded`` (two more decimals
    everywhere) or ``sci`` (scientific notation). ``server_order`` is a permutation
    of server indices (ids are kept, only the lines move); ``None`` keeps 1..N.
    """

    header: str | None = HEADER
    labels: dict[str, str] = field(default_factory=dict)
    data_unit: str = "Mbit"
    time_unit: str = "slots"
    rate_unit: str = "Mbit/slot"
    freq_unit: str = "GHz"
    density_unit: str = "cycles/bit"
    link_unit: str = "Mbit/s"
    slot_unit: str = "s"
    numbers: str = "fixed"
    field_order: tuple[str, ...] = FIELD_ORDER
    attr_order: tuple[str, ...] = SERVER_ATTR_ORDER
    device_attr_order: tuple[str, ...] = DEVICE_ATTR_ORDER
    server_order: tuple[int, ...] | None = None

    def label(self, key: str) -> str:
        if key in self.labels:
            return self.labels[key]
        table = V.ALL_FIELDS if key in V.ALL_FIELDS else V.ALL_ATTRS
        return table[key][0][0]


def _pad(s: str, decimals: int) -> str:
    """``s`` with trailing zeros up to ``decimals`` decimals (never fewer digits than it has)."""
    whole, _, frac = s.partition(".")
    return f"{whole}.{frac.ljust(decimals, '0')}"


class _Numbers:
    """Writes numbers in one :class:`Style`'s format with ``decimals`` decimals for quantities."""

    def __init__(self, style: Style, decimals: int) -> None:
        self.fmt = style.numbers
        self.d = decimals
        self.cd = max(decimals, CONSTANT_DECIMALS)

    def _sci(self, x: float) -> str:
        mant, exp = f"{round(x, 10):.12e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
        return f"{mant}e{exp}"

    def quantity(self, x: float, factor: float = 1.0) -> str:
        """A size, wait, rate or queue (``factor`` converts from the canonical unit)."""
        if self.fmt == "sci":
            return self._sci(x * factor)
        if factor != 1.0:
            s = shortest(x * factor)
            return _pad(s, self.d + 2) if self.fmt == "padded" else s
        if self.fmt == "strip":
            return compact(x, self.d)
        return fixed(x, self.d + (2 if self.fmt == "padded" else 0))

    def constant(self, x: float, factor: float = 1.0) -> str:
        """A constant of the system (GHz, cycles/bit, slot length, penalty) or a load-history count."""
        if self.fmt == "sci":
            return self._sci(x * factor)
        s = shortest(x * factor) if factor != 1.0 else compact(x, self.cd)
        return _pad(s, self.cd + 2) if self.fmt == "padded" else s

    def integer(self, n: int) -> str:
        return fixed(float(n), self.d + 2) if self.fmt == "padded" else str(int(n))


def render_field_dict(state: TaskState, style: Style, decimals: int) -> dict[str, str]:
    """The lines of an English prompt as ``label -> value`` in ``style`` (no header)."""
    num = _Numbers(style, decimals)
    slot = state.slot_s
    time_factor = {"slots": 1.0, "s": slot, "ms": slot * 1e3}[style.time_unit]
    rate_factor = _RATE[style.rate_unit]
    rate_factor = 1.0 / slot if rate_factor is None else rate_factor
    data_f = _DATA[style.data_unit]

    def time(x: float) -> str:
        return f"{num.quantity(x, time_factor)} {style.time_unit}"

    values = {
        "task_size": f"{num.quantity(state.task_size, data_f)} {style.data_unit}",
        "max_delay": (
            f"{num.integer(state.max_delay)} slots"
            if style.time_unit == "slots"
            else f"{num.quantity(state.max_delay, time_factor)} {style.time_unit}"
        ),
        "local_wait": time(state.local_wait),
        "tx_wait": time(state.tx_wait),
        "upload_rate": f"{num.quantity(state.upload_rate, rate_factor)} {style.rate_unit}",
        "slot_s": f"{num.constant(slot, _SLOT[style.slot_unit])} {style.slot_unit}",
        "drop_penalty": num.constant(state.drop_penalty),
        "slot_arrivals": f"{num.integer(state.slot_arrivals)} tasks",
        "slot_pending": f"{num.integer(state.slot_pending)} tasks",
    }
    freq_f = _FREQ[style.freq_unit]
    dens_f = _DENSITY[style.density_unit]
    device_attrs = {
        "cpu_ghz": f"{style.label('cpu_ghz')} {num.constant(state.device_ghz, freq_f)} {style.freq_unit}",
        "cycles_per_bit": (
            f"{style.label('cycles_per_bit')} {num.constant(state.device_cycles_per_bit, dens_f)} {style.density_unit}"
        ),
        "uplink_mbps": f"{style.label('uplink_mbps')} {num.constant(state.device_mbps, _LINK[style.link_unit])} {style.link_unit}",
    }
    values["device"] = ", ".join(device_attrs[k] for k in style.device_attr_order)
    out = {style.label(k): values[k] for k in style.field_order}
    order = style.server_order if style.server_order is not None else range(state.n_servers)
    for j in order:
        s = state.servers[j]
        attrs = {
            "type": f"{style.label('type')} {s.type}",
            "cpu_ghz": f"{style.label('cpu_ghz')} {num.constant(s.cpu_ghz, freq_f)} {style.freq_unit}",
            "cycles_per_bit": f"{style.label('cycles_per_bit')} {num.constant(s.cycles_per_bit, dens_f)} {style.density_unit}",
            "active": f"{style.label('active')} {num.integer(s.active)}",
            "queued_mbit": f"{style.label('queued_mbit')} {num.quantity(s.queued_mbit, data_f)} {style.data_unit}",
            "incoming_mbit": f"{style.label('incoming_mbit')} {num.quantity(s.incoming_mbit, data_f)} {style.data_unit}",
            "incoming_tasks": f"{style.label('incoming_tasks')} {num.integer(s.incoming_tasks)}",
            "history": f"{style.label('history')} " + " ".join(num.constant(h) for h in s.history),
        }
        out[f"server {j + 1}"] = ", ".join(attrs[k] for k in style.attr_order)
    return out


@dataclass(frozen=True, repr=False)
class PaperTemplate(Template):
    """The raw state in English, one line per field and per server (optionally derived per-action lines)."""

    name: str = "paper"
    lang: str = "en"
    decimals: int = 4
    style: Style = Style()
    derived: bool = False  # add one 'if <action>:' line per action with cost-model quantities
    description: str = "English, the raw state (every field of DESIGN §2, units written out)"
    fresh_view: bool = False  # carries the fresh-view fields (the -v2 templates; give them a FIELD_ORDER_V2 style)
    estimate: str = "one-step"  # the derived lines' estimate: 'one-step' (the paper's) or 'incoming' (ESTIMATE_LINES)

    @property
    def instruction(self) -> str:
        return self.style.header or ""

    def render_fields(self, state: TaskState) -> dict[str, Any]:
        return render_field_dict(state, self.style, self.decimals)

    def render_prompt(self, state: TaskState) -> str:
        lines = [f"{k}: {v}" for k, v in self.render_fields(state).items()]
        if self.derived:
            if self.fresh_view:  # the -v2 templates say which estimate they print
                lines.append(ESTIMATE_LINES[self.estimate])
            lines += derived_lines(state, self.decimals, incoming=self.estimate == "incoming")
        if self.style.header:
            lines.insert(0, self.style.header)
        return "\n".join(lines)

    def with_style(self, **changes: Any) -> "PaperTemplate":
        """This template with some :class:`Style` options changed."""
        return replace(self, style=replace(self.style, **changes))


def derived_lines(state: TaskState, decimals: int, incoming: bool = False) -> list[str]:
    """One ``if <action>: ...`` line per action: service rate (Mbit/slot) and latency terms (slots).

    ``incoming``: the incoming-aware estimate (``comllm.cost.action_costs(batch, incoming=True)``).
    """
    out = []
    for t in action_terms(state, incoming=incoming):
        who = "local" if t.action == 0 else f"server {t.action}"
        f = lambda x: fixed(x, decimals)  # noqa: E731
        upload = "" if t.action == 0 else f", upload {f(t.upload)}"
        out.append(
            f"if {who}: service {f(t.service)} Mbit/slot, wait {f(t.wait)}{upload}, "
            f"compute {f(t.compute)}, est {f(t.est)} slots"
        )
    return out


@dataclass(frozen=True, repr=False)
class EstimatesTemplate(Template):
    """Only the estimated latency of each action, one short line per action (``server 3: est 4.21``).

    With ``fresh_view`` (``estimates-v2``) it prints the incoming-aware estimate and says so
    on its first line, then the slot's counts, and each server line also shows the traffic
    headed there (example in the module docstring).
    """

    name: str = "estimates"
    lang: str = "en"
    decimals: int = 2
    carries_state: bool = False
    description: str = "English, only each action's estimated latency (slots), one line per action"
    fresh_view: bool = False
    estimate: str = "one-step"

    def render_prompt(self, state: TaskState) -> str:
        f = lambda x: fixed(x, self.decimals)  # noqa: E731
        lines = []
        if self.fresh_view:
            lines.append(ESTIMATE_LINES[self.estimate])
            lines.append(f"slot: {state.slot_arrivals} tasks arriving, {state.slot_pending} undecided")
        for t in action_terms(state, incoming=self.estimate == "incoming"):
            who = "local" if t.action == 0 else f"server {t.action}"
            line = f"{who}: est {f(t.est)}"
            if self.fresh_view and t.action:
                s = state.servers[t.action - 1]
                line += f", incoming {f(s.incoming_mbit)} Mbit, {s.incoming_tasks} tasks"
            lines.append(line)
        return "\n".join(lines)
