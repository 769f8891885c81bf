"""Compact English templates tuned for the embedded value-token model.

Short words, one line per action, every number a plain decimal with at most 2
decimals (the value tokens' resolution), no thousands separators.

* ``estimates-compact``: only each action's estimated latency (docs/model.md §6), one
  line per action. The easy signal; a model that reads it is the greedy oracle.
* ``annotated-compact``: the raw state (task, device, every server's type, CPU,
  active count, queued Mbit and load history) with each action's estimate
  placed FIRST on its line, so the argmin the estimates teach stays easy to
  read next to the raw numbers (the estimate last on the line stalled training,
  see docs/notes/lm-on-cpu.md).
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

The ``-v2`` templates (``estimates-compact-v2``, ``annotated-compact-v2``,
``raw-compact-v2``) add the fresh view in the same style: the slot's arrivals and
undecided tasks (``arrivals``, ``unseen``) end the task line (``estimates-compact-v2``
gets a line for them), and each server's incoming Mbit and tasks (``incoming``,
``uploading``) follow its queue. Their estimate is the incoming-aware one
(``action_costs(batch, incoming=True)``: incoming Mbit counted as queued), and a first
line says so (:data:`ESTIMATE_LEGEND`); so :attr:`action_line_start` is 2 for both
(1 for ``raw-compact-v2``). The names without ``-v2`` keep writing what they wrote
(shipped checkpoints were trained on them). ``annotated-compact-v2``::

    est = one-step latency, incoming counted in queue
    task 4.19 Mbit deadline 10 rate 1.4 Mbit/slot txwait 0 slot 0.1 s penalty 100 arrivals 4 unseen 3
    local: est 7.98 | wait 3 cpu 2.5 GHz density 297
    server 1: est 3.52 | high cpu 41.8 GHz active 0 queue 0 Mbit incoming 3.2 Mbit uploading 2 load 2 0 1 1 0
    server 2: est 6.4 | std cpu 30 GHz active 2 queue 7.27 Mbit incoming 0 Mbit uploading 0 load 3 3 0 3 4
    server 3: est 160.78 | eco cpu 22 GHz density 1200.5 active 5 queue 31.5 Mbit incoming 12.5 Mbit uploading 3 load 5 6 4.5 5 7
    answer:

``estimates-compact-v2``::

    est = one-step latency, incoming counted in queue
    arrivals 4 unseen 3
    local: est 7.98
    server 1: est 3.52 | incoming 3.2 Mbit uploading 2
    server 2: est 6.4 | incoming 0 Mbit uploading 0
    server 3: est 160.78 | incoming 12.5 Mbit uploading 3
    answer:

``raw-compact-v2``::

    task 4.19 Mbit deadline 10 rate 1.4 Mbit/slot txwait 0 slot 0.1 s penalty 100 arrivals 4 unseen 3
    local: wait 3 cpu 2.5 GHz density 297
    server 1: high cpu 41.8 GHz active 0 queue 0 Mbit incoming 3.2 Mbit uploading 2 load 2 0 1 1 0
    server 2: std cpu 30 GHz active 2 queue 7.27 Mbit incoming 0 Mbit uploading 0 load 3 3 0 3 4
    server 3: eco cpu 22 GHz density 1200.5 active 5 queue 31.5 Mbit incoming 12.5 Mbit uploading 3 load 5 6 4.5 5 7
    answer:

``lean-v2`` (the fast template of the fresh-view models: each action's incoming-aware
estimate first, then active tasks, queued and incoming Mbit; no units, no static fields)::

    task 4.19 arrivals 4 unseen 3
    local: est 7.98 wait 3
    server 1: est 3.52 active 0 queue 0 incoming 3.2
    server 2: est 6.4 active 2 queue 7.27 incoming 0
    server 3: est 160.78 active 5 queue 31.5 incoming 12.5
    answer:

Every choice of wording, unit, number format and order is a field of a
:class:`CompactStyle`; a template's default style writes the text above byte
for byte (checkpoints and data depend on it). The robustness perturbations
(:mod:`comllm.text.perturb`) are other styles: ``template.with_style(style)``.
With a ``server_order`` the server lines move (ids kept), so
:attr:`action_line_start` + a no longer finds action a's line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from comllm.state import StateBatch, TaskState
from comllm.text.answers import action_name
from comllm.text.template import Template, quantize_state
from comllm.text.units import CompactNumbers, factor, printed_decimals

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
#: The words of the fresh view, written only by the ``-v2`` compact templates (kept apart
#: from :data:`WORDS` so that the templates of before, and their perturbations, write what
#: they wrote): the slot's arrivals and undecided tasks on the task line, each server's
#: incoming Mbit and tasks on its line.
FRESH_WORDS: dict[str, tuple[str, ...]] = {
    "arrivals": ("arrivals", "arriving", "newcomers", "entrants"),
    "unseen": ("unseen", "undecided", "concurrent", "simultaneous"),
    "incoming": ("incoming", "inbound", "transit", "enroute"),
    "uploading": ("uploading", "sending", "transferring", "uploads"),
}
ALL_WORDS: dict[str, tuple[str, ...]] = {**WORDS, **FRESH_WORDS}
_tokens = [t for ws in ALL_WORDS.values() for w in ws for t in w.split()]
assert len(_tokens) == len(set(_tokens)), "a word of the compact labels is used twice"
assert not {"local", "server", "answer"} & set(_tokens)

#: Attributes of the task line, the local line and the server lines, in canonical order.
TASK_ATTRS: tuple[str, ...] = ("task", "deadline", "rate", "txwait", "slot", "penalty")
LOCAL_ATTRS: tuple[str, ...] = ("est", "wait", "cpu", "density")
SERVER_ATTRS: tuple[str, ...] = ("est", "type", "cpu", "density", "active", "queue", "load")
#: the ``-v2`` orders: the slot's counts end the task line, the incoming traffic follows the queue
TASK_ATTRS_V2: tuple[str, ...] = TASK_ATTRS + ("arrivals", "unseen")
SERVER_ATTRS_V2: tuple[str, ...] = SERVER_ATTRS[:6] + ("incoming", "uploading") + SERVER_ATTRS[6:]
FRESH_ATTRS: frozenset[str] = frozenset(FRESH_WORDS)
#: the first line of the ``-v2`` compact templates that print estimates: which estimate it is
#: (in the style's words for the estimate, the incoming traffic and the queue)
ESTIMATE_LEGEND = "{est} = one-step latency, {incoming} counted in {queue}"

#: Number formats (:class:`comllm.text.units.CompactNumbers`): ``compact`` (canonical: at
#: most 2 decimals, no trailing zeros), ``fixed`` (exactly 3 decimals), ``padded`` (exactly 6
#: decimals, counts too), ``sci`` (scientific notation, 7 significant digits).
NUMBER_FORMATS = CompactNumbers.FORMATS


@dataclass(frozen=True)
class CompactStyle:
    """Every rendering choice of the compact templates (a :class:`~comllm.text.template.TemplateStyle`).

    The default writes the canonical text. ``labels`` maps keys of :data:`WORDS` to the
    word written (default: the canonical one). ``*_attrs`` are the attributes of each
    line in the order written (an attribute the template does not write is skipped).
    ``server_order`` is a permutation of server indices (ids are kept, only the lines
    move; ``local`` stays first); ``None`` keeps 1..N. ``server_ids`` renames the servers
    (server index i is written ``server <server_ids[i]>``; a training device, see
    ``comllm sft --renumber``: answers must then name the new ids); ``None``: ids 1..N. Units are spellings of
    :data:`comllm.text.units.UNITS` ('': the canonical unit, not written: slots for
    times, cycles/bit for densities); ``numbers`` is one of :data:`NUMBER_FORMATS`.
    """

    FAMILY: ClassVar[str] = "compact"
    PERTURBABLE: ClassVar[frozenset[str]] = frozenset({"orders", "servers", "labels", "units", "numbers"})
    ORDERS: ClassVar[tuple[str, ...]] = ("task_attrs", "local_attrs", "server_attrs")
    NUMBER_FORMATS: ClassVar[tuple[str, ...]] = CompactNumbers.FORMATS

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
    server_ids: tuple[int, ...] | None = None
    bar: bool = True  # " |" after an estimate written first (the lean template writes none)

    def label(self, key: str) -> str:
        return self.labels.get(key, ALL_WORDS[key][0])

    @property
    def fresh_view(self) -> bool:
        """Whether this style writes fresh-view attributes (a ``-v2`` style)."""
        return any(a in FRESH_ATTRS for a in (*self.task_attrs, *self.server_attrs))

    def word_tables(self) -> list[dict[str, tuple[str, ...]]]:
        """:data:`WORDS`; a ``-v2`` style's :data:`FRESH_WORDS` after them."""
        return [WORDS, FRESH_WORDS] if self.fresh_view else [WORDS]


class CompactTemplate(Template):
    """The compact templates: a subclass says which lines it writes (estimates, raw state, fresh view)."""

    lang = "en"
    decimals = 2
    carries_state = False
    with_estimates = True
    with_raw = True
    fresh_view = False  # the -v2 templates: the fresh view, the incoming-aware estimate and a legend line
    sharing = False  # the estimate printed is greedy:sharing's (comllm.cost.ESTIMATES), not the incoming-aware one
    legend = True  # -v2 with estimates: a first line saying which estimate is printed

    def __init__(self, style: CompactStyle | None = None) -> None:
        self.style = style if style is not None else self.default_style()

    @classmethod
    def default_style(cls) -> CompactStyle:
        """The canonical style, with only the attributes this template writes."""

        def keep(attrs: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(
                a
                for a in attrs
                if (a == "est" and cls.with_estimates)
                or (a in FRESH_ATTRS and cls.fresh_view)
                or (a != "est" and a not in FRESH_ATTRS and cls.with_raw)
            )

        task, server = (TASK_ATTRS_V2, SERVER_ATTRS_V2) if cls.fresh_view else (TASK_ATTRS, SERVER_ATTRS)
        return CompactStyle(task_attrs=keep(task), local_attrs=keep(LOCAL_ATTRS), server_attrs=keep(server))

    @property
    def printed_estimate(self) -> str:
        return "sharing" if self.sharing else super().printed_estimate

    @property
    def action_line_start(self) -> int:
        """Index of the prompt line of action 0 (local); action ``a`` is on line ``action_line_start + a``

        (in the canonical server order; a ``server_order`` moves the server lines)."""
        legend = self.fresh_view and self.with_estimates and self.legend
        task_line = self.with_raw or self.fresh_view
        return int(legend) + int(task_line)

    def quantize(self, state: TaskState) -> TaskState:
        return quantize_state(state, self.decimals, self.carried)

    def prompt_numbers(self, states: list[TaskState] | StateBatch) -> np.ndarray | None:
        """The numbers each state's prompt prints, in text order, as they read back, ``(B, K)``.

        The values :meth:`render_prompt` writes (``float`` of each number's text; server ids,
        which name a line, are not among them), computed for the whole batch at once: the
        words around them are the same for every state of one server count, so a prompt is
        its numbers (:class:`comllm.lm.fast_prompts.FastPrompts` builds token ids from them).
        ``None`` where a state's words depend on its values or the numbers are not plain: a
        style with converted units, another number format, moved or renamed servers, server
        type, load-history or density attributes, a number that is negative or not finite, or
        states that do not stack into one :class:`StateBatch`. ``states`` (a list, or a batch,
        which saves building it) share one server count.
        """
        st = self.style
        if not len(states):
            return None
        slot = float(states.slot_s[0]) if isinstance(states, StateBatch) else states[0].slot_s
        kinds = ("time", "data", "rate", "freq", "density", "slot")
        units = (st.time_unit, st.data_unit, st.rate_unit, st.freq_unit, st.density_unit, st.slot_unit)
        if (
            st.numbers != "compact"
            or st.server_order is not None
            or st.server_ids is not None
            or any(factor(k, u, slot) != 1.0 for k, u in zip(kinds, units, strict=True))
            or {"type", "load", "density"} & set(st.server_attrs)
        ):
            return None
        try:
            b = states if isinstance(states, StateBatch) else StateBatch.from_states(states)
        except ValueError:  # not one batch (load histories of several lengths): render them one by one
            return None
        n = b.n_servers
        d = self.decimals
        counts: list[bool] = []
        cols: list[np.ndarray] = []  # one (B,) column per number, and whether it is a count

        def put(keys: tuple[str, ...], values: dict[str, tuple[np.ndarray, bool]]) -> None:
            for k in keys:
                if k in values:
                    cols.append(values[k][0])
                    counts.append(values[k][1])

        task: dict[str, tuple[np.ndarray, bool]] = {}
        if self.with_raw:
            task = {"task": (b.task_size, False), "deadline": (b.max_delay, st.time_unit == ""),
                    "rate": (b.upload_rate, False), "txwait": (b.tx_wait, False), "slot": (b.slot_s, False),
                    "penalty": (b.drop_penalty, False)}  # fmt: skip
        if self.fresh_view:
            task |= {"arrivals": (b.slot_arrivals, True), "unseen": (b.slot_pending, True)}
        put(st.task_attrs, task)
        est = self.estimate_costs(b) if self.with_estimates else None
        local: dict[str, tuple[np.ndarray, bool]] = {}
        if est is not None:
            local["est"] = (est[:, 0], False)
        if self.with_raw:
            local |= {"wait": (b.local_wait, False), "cpu": (b.device_ghz, False),
                      "density": (b.device_cycles_per_bit, False)}  # fmt: skip
        put(st.local_attrs, local)
        for i in range(n):
            srv: dict[str, tuple[np.ndarray, bool]] = {}
            if est is not None:
                srv["est"] = (est[:, i + 1], False)
            if self.with_raw:
                srv |= {"cpu": (b.server_ghz[:, i], False), "active": (b.active[:, i], True),
                        "queue": (b.queued[:, i], False)}  # fmt: skip
            if self.fresh_view:
                srv |= {"incoming": (b.incoming[:, i], False), "uploading": (b.incoming_n[:, i], True)}
            put(st.server_attrs, srv)
        x = np.stack(cols, axis=1).astype(np.float64)
        if not np.isfinite(x).all() or (x < 0).any():
            return None
        return np.where(np.array(counts)[None], np.trunc(x), printed_decimals(x, d))

    def render_prompt(self, state: TaskState) -> str:
        st = self.style
        num = CompactNumbers(st.numbers, self.decimals)
        est = self.estimate_costs(StateBatch.from_states([state]))[0] if self.with_estimates else None
        slot = state.slot_s
        time_f, data_f = factor("time", st.time_unit, slot), factor("data", st.data_unit, slot)
        freq_f, dens_f = factor("freq", st.freq_unit, slot), factor("density", st.density_unit, slot)

        def val(x: float, f: float = 1.0, unit: str = "") -> str:
            return f"{num.quantity(x, f)} {unit}" if unit else num.quantity(x, f)

        def time(x: float) -> str:
            return val(x, time_f, st.time_unit)

        def attrs(order: tuple[str, ...], values: dict[str, str]) -> list[str]:
            # an attribute not in ``values`` is not written (not by this template, or a server's
            # density equal to the device's)
            keys = [k for k in order if k in values]
            out = [values[k] if k == "type" else f"{st.label(k)} {values[k]}" for k in keys]
            if st.bar and len(keys) > 1 and keys[0] == "est":
                out[0] += " |"  # the bar ends an estimate written first, before the raw attributes
            return out

        def action_line(who: str, values: dict[str, str]) -> str:
            parts = attrs(st.local_attrs if who == action_name(0) else st.server_attrs, values)
            return f"{who}: " + " ".join(parts) if parts else f"{who}:"

        def with_est(k: int, values: dict[str, str]) -> dict[str, str]:
            return {"est": time(est[k]), **values} if est is not None else values

        lines = []
        if self.fresh_view and self.with_estimates and self.legend:  # the -v2 templates say which estimate
            words = {k: st.label(k) for k in ("est", "incoming", "queue")}
            lines.append(ESTIMATE_LEGEND.format(**words))
        task: dict[str, str] = {}
        if self.with_raw:
            task = {
                "task": val(state.task_size, data_f, st.data_unit),
                "deadline": num.count(state.max_delay) if st.time_unit == "" else time(state.max_delay),
                "rate": val(state.upload_rate, factor("rate", st.rate_unit, slot), st.rate_unit),
                "txwait": time(state.tx_wait),
                "slot": val(slot, factor("slot", st.slot_unit, slot), st.slot_unit),
                "penalty": val(state.drop_penalty),
            }
        if self.fresh_view:
            task["arrivals"] = num.count(state.slot_arrivals)
            task["unseen"] = num.count(state.slot_pending)
        if task:
            lines.append(" ".join(attrs(st.task_attrs, task)))
        local = {}
        if self.with_raw:
            local = {
                "wait": time(state.local_wait),
                "cpu": val(state.device_ghz, freq_f, st.freq_unit),
                "density": val(state.device_cycles_per_bit, dens_f, st.density_unit),
            }
        lines.append(action_line(action_name(0), with_est(0, local)))
        order = st.server_order if st.server_order is not None else range(state.n_servers)
        if st.server_ids is not None and len(st.server_ids) < state.n_servers:
            raise ValueError(f"style server_ids={st.server_ids} names fewer than the state's {state.n_servers} servers")
        for i in order:
            s, j = state.servers[i], (i + 1 if st.server_ids is None else st.server_ids[i])
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
                raw["load"] = " ".join(num.constant(h) for h in s.history)
            if self.fresh_view:
                raw["incoming"] = val(s.incoming_mbit, data_f, st.data_unit)
                raw["uploading"] = num.count(s.incoming_tasks)
            lines.append(action_line(action_name(j), with_est(i + 1, raw)))
        lines.append("answer:")
        return "\n".join(lines)


class EstimatesCompact(CompactTemplate):
    name = "estimates-compact"
    with_raw = False
    description = "each action's estimated latency only, one short line per action (embedded model)"


class AnnotatedCompact(CompactTemplate):
    name = "annotated-compact"
    description = "raw state, each action's estimated latency first on its line (embedded model)"


class RawCompact(CompactTemplate):
    name = "raw-compact"
    with_estimates = False
    description = "raw state only, one short line per action (embedded model)"


class EstimatesCompactV2(EstimatesCompact):
    """``estimates-compact`` + the fresh view; the estimate is the incoming-aware one (first line says so)."""

    name = "estimates-compact-v2"
    fresh_view = True
    description = "each action's incoming-aware estimate, the slot's counts, each server's incoming traffic"


class AnnotatedCompactV2(AnnotatedCompact):
    """``annotated-compact`` + the fresh view; the estimate is the incoming-aware one (first line says so)."""

    name = "annotated-compact-v2"
    fresh_view = True
    description = "raw state + the fresh view, each action's incoming-aware estimate first on its line"


class RawCompactV2(RawCompact):
    """``raw-compact`` + the fresh view (no estimates)."""

    name = "raw-compact-v2"
    fresh_view = True
    description = "raw state + the fresh view, one short line per action (embedded model)"


class LeanV2(CompactTemplate):
    """The fresh view in as few tokens as the decision needs (the fast default of the embedded model).

    Each action's incoming-aware estimate first on its line, then the server's active tasks,
    queued Mbit and incoming Mbit; the task line has the task's size and the slot's counts.
    No legend, no bar, no units, no static fields (server type, CPU: the estimate prices
    them). 88 tokens at 6 servers (``annotated-compact-v2``: 241)::

        task 4.19 arrivals 4 unseen 3
        local: est 7.98 wait 3
        server 1: est 3.52 active 0 queue 0 incoming 3.2
        server 2: est 6.4 active 2 queue 7.27 incoming 0
        answer:
    """

    name = "lean-v2"
    fresh_view = True
    legend = False
    description = "fast: incoming-aware estimate, active, queue and incoming per action line, the slot's counts"

    @classmethod
    def default_style(cls) -> CompactStyle:
        return CompactStyle(
            task_attrs=LEAN_TASK_ATTRS, local_attrs=LEAN_LOCAL_ATTRS, server_attrs=LEAN_SERVER_ATTRS,
            data_unit="", rate_unit="", freq_unit="", slot_unit="", bar=False,
        )  # fmt: skip


class LeanSharing(LeanV2):
    """``lean-v2`` printing ``greedy:sharing``'s estimate (:data:`comllm.cost.ESTIMATES`, ``sharing``).

    The same lines, words and numbers but ``est``: each server's compute is priced as its queues
    share it, ``min(Q + I, (a + n)·S) + S`` Mbit, instead of the paper's ``(Q + I + S)·(a + 1)``,
    which over-counts a loaded server's backlog (README, "What a policy sees"). A cost head
    trained on this template regresses that estimate::

        task 4.19 arrivals 4 unseen 3
        local: est 7.98 wait 3
        server 1: est 3.52 active 0 queue 0 incoming 3.2
        server 2: est 4.13 active 2 queue 7.27 incoming 0
        server 3: est 23.59 active 5 queue 31.5 incoming 12.5
        answer:

    (``lean-v2`` prints 6.4 and 160.78 for servers 2 and 3 of the same state.)
    """

    name = "lean-sharing"
    sharing = True
    description = "lean-v2 with greedy:sharing's estimate (a server's compute as its queues share it)"


#: the lean template's attributes (a subset of the ``-v2`` ones, same canonical order)
LEAN_TASK_ATTRS: tuple[str, ...] = ("task", "arrivals", "unseen")
LEAN_LOCAL_ATTRS: tuple[str, ...] = ("est", "wait")
LEAN_SERVER_ATTRS: tuple[str, ...] = ("est", "active", "queue", "incoming")

COMPACT_TEMPLATES = (EstimatesCompact(), AnnotatedCompact(), RawCompact())
COMPACT_TEMPLATES_V2 = (EstimatesCompactV2(), AnnotatedCompactV2(), RawCompactV2(), LeanV2(), LeanSharing())

