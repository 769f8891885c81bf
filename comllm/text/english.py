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
written without trailing zeros (:class:`comllm.text.units.FieldNumbers`). A
:class:`Style` holds every choice of wording, unit, number format and order, so
perturbations are styles (see :mod:`comllm.text.perturb`) and the tolerant parser
reads them all back.

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
(:func:`comllm.cost.action_costs`, docs/model.md §6); ``annotated-v2`` and ``estimates-v2``
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

from dataclasses import dataclass, field
from typing import Any, ClassVar

from comllm.state import TaskState
from comllm.text import vocab as V
from comllm.text.answers import action_name
from comllm.text.derived import action_terms
from comllm.text.template import Template
from comllm.text.units import FieldNumbers, factor, fixed
from comllm.text.vocab import DEVICE_ATTR_ORDER, FIELD_ORDER, SERVER_ATTR_ORDER

#: the line that says which estimate a ``-v2`` template prints (comllm.cost.action_costs)
ESTIMATE_LINES = {
    "one-step": "estimates: one-step latency in slots, the paper's formula",
    "incoming": "estimates: one-step latency in slots, each server's incoming Mbit counted as queued",
}

HEADER = (
    'A task just arrived at a mobile device. Reply "local" to compute it there or "server K" to offload it '
    "to edge server K, whichever gives the lowest latency within the max delay."
)
NUMBER_FORMATS = FieldNumbers.FORMATS


@dataclass(frozen=True)
class Style:
    """Every rendering choice of the English field templates (a :class:`~comllm.text.template.TemplateStyle`).

    ``labels`` maps field and attribute keys (:data:`vocab.FIELDS`, :data:`vocab.ATTRS`)
    to the label written (default: the canonical one). Units are spellings of
    :data:`comllm.text.units.UNITS` for each kind of value. ``numbers`` is a format of
    :class:`~comllm.text.units.FieldNumbers`: ``fixed`` (the canonical format), ``strip``
    (no trailing zeros), ``padded`` (two more decimals everywhere) or ``sci`` (scientific
    notation). ``server_order`` is a permutation of server indices (ids are kept, only
    the lines move); ``None`` keeps 1..N.
    """

    FAMILY: ClassVar[str] = "English"
    PERTURBABLE: ClassVar[frozenset[str]] = frozenset({"orders", "servers", "labels", "units", "numbers"})
    ORDERS: ClassVar[tuple[str, ...]] = ("field_order", "attr_order", "device_attr_order")
    NUMBER_FORMATS: ClassVar[tuple[str, ...]] = FieldNumbers.FORMATS

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

    @property
    def fresh_view(self) -> bool:
        """Whether this style writes fresh-view fields or attributes (a ``-v2`` style)."""
        return any(k in V.FRESH_FIELDS for k in self.field_order) or any(k in V.FRESH_ATTRS for k in self.attr_order)

    def word_tables(self) -> list[dict[str, tuple[str, ...]]]:
        """The English labels of the fields and attributes; a ``-v2`` style's fresh-view ones after them."""
        tables = [V.FIELDS, V.ATTRS] + ([V.FRESH_FIELDS, V.FRESH_ATTRS] if self.fresh_view else [])
        return [{key: en for key, (en, _) in t.items()} for t in tables]


def render_field_dict(state: TaskState, style: Style, decimals: int) -> dict[str, str]:
    """The lines of an English prompt as ``label -> value`` in ``style`` (no header)."""
    num = FieldNumbers(style.numbers, decimals)
    slot = state.slot_s
    time_f, data_f = factor("time", style.time_unit, slot), factor("data", style.data_unit, slot)
    freq_f, dens_f = factor("freq", style.freq_unit, slot), factor("density", style.density_unit, slot)

    def time(x: float) -> str:
        return f"{num.quantity(x, time_f)} {style.time_unit}"

    def attr(key: str, text: str) -> str:
        return f"{style.label(key)} {text}"

    values = {
        "task_size": f"{num.quantity(state.task_size, data_f)} {style.data_unit}",
        "max_delay": f"{num.count(state.max_delay)} slots" if style.time_unit == "slots" else time(state.max_delay),
        "local_wait": time(state.local_wait),
        "tx_wait": time(state.tx_wait),
        "upload_rate": f"{num.quantity(state.upload_rate, factor('rate', style.rate_unit, slot))} {style.rate_unit}",
        "slot_s": f"{num.constant(slot, factor('slot', style.slot_unit, slot))} {style.slot_unit}",
        "drop_penalty": num.constant(state.drop_penalty),
        "slot_arrivals": f"{num.count(state.slot_arrivals)} tasks",
        "slot_pending": f"{num.count(state.slot_pending)} tasks",
    }
    link = num.constant(state.device_mbps, factor("link", style.link_unit, slot))
    device_attrs = {
        "cpu_ghz": attr("cpu_ghz", f"{num.constant(state.device_ghz, freq_f)} {style.freq_unit}"),
        "cycles_per_bit": attr(
            "cycles_per_bit", f"{num.constant(state.device_cycles_per_bit, dens_f)} {style.density_unit}"
        ),
        "uplink_mbps": attr("uplink_mbps", f"{link} {style.link_unit}"),
    }
    values["device"] = ", ".join(device_attrs[k] for k in style.device_attr_order)
    out = {style.label(k): values[k] for k in style.field_order}
    order = style.server_order if style.server_order is not None else range(state.n_servers)
    for j in order:
        s = state.servers[j]
        attrs = {
            "type": attr("type", s.type),
            "cpu_ghz": attr("cpu_ghz", f"{num.constant(s.cpu_ghz, freq_f)} {style.freq_unit}"),
            "cycles_per_bit": attr("cycles_per_bit", f"{num.constant(s.cycles_per_bit, dens_f)} {style.density_unit}"),
            "active": attr("active", num.count(s.active)),
            "queued_mbit": attr("queued_mbit", f"{num.quantity(s.queued_mbit, data_f)} {style.data_unit}"),
            "incoming_mbit": attr("incoming_mbit", f"{num.quantity(s.incoming_mbit, data_f)} {style.data_unit}"),
            "incoming_tasks": attr("incoming_tasks", num.count(s.incoming_tasks)),
            "history": attr("history", " ".join(num.constant(h) for h in s.history)),
        }
        out[action_name(j + 1)] = ", ".join(attrs[k] for k in style.attr_order)
    return out


@dataclass(frozen=True, repr=False)
class PaperTemplate(Template):
    """The raw state in English, one line per field and per server (optionally derived per-action lines)."""

    name: str = "paper"
    lang: str = "en"
    decimals: int = 4
    style: Style = Style()
    derived: bool = False  # add one 'if <action>:' line per action with cost-model quantities
    description: str = "English, the raw state (every field of docs/model.md §5, units written out)"
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


def derived_lines(state: TaskState, decimals: int, incoming: bool = False) -> list[str]:
    """One ``if <action>: ...`` line per action: service rate (Mbit/slot) and latency terms (slots).

    ``incoming``: the incoming-aware estimate (``comllm.cost.action_costs(batch, incoming=True)``).
    """
    out = []
    for t in action_terms(state, incoming=incoming):
        who = action_name(t.action)
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
            line = f"{action_name(t.action)}: est {f(t.est)}"
            if self.fresh_view and t.action:
                s = state.servers[t.action - 1]
                line += f", incoming {f(s.incoming_mbit)} Mbit, {s.incoming_tasks} tasks"
            lines.append(line)
        return "\n".join(lines)
