"""The :class:`Template` interface: a state to a prompt and back, an action to an answer and back.

A template that can be written differently has a :attr:`Template.style`, a
:class:`TemplateStyle`: every choice of wording, unit, number format and order, as a
frozen dataclass. ``template.with_style(style, **changes)`` is the template writing in
another one, for every family (English fields, Chinese, compact); the perturbations of
:mod:`comllm.text.perturb` are changes of style made through :class:`TemplateStyle` alone.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar, Protocol

import numpy as np

from comllm.cost import estimate_costs
from comllm.state import FieldSpec, ServerView, StateBatch, TaskState, server_fields, task_fields
from comllm.text import answers as _answers
from comllm.text.errors import TextError
from comllm.text.parse import parse_field_items, parse_prompt_text
from comllm.text.reasoning import reasoning_trace
from comllm.text.units import CONSTANT_DECIMALS


#: the fresh-view fields (comllm.state): templates written before them do not carry them
FRESH_VIEW_FIELDS: frozenset[str] = frozenset({"incoming_mbit", "incoming_tasks", "slot_arrivals", "slot_pending"})
#: every field of the schema (what a ``-v2`` template carries, device and slot aside)
ALL_FIELDS: frozenset[str] = frozenset(f.name for f in (*task_fields(), *server_fields()))

#: Versions of a template: a template's name promises its text (shipped checkpoints and
#: datasets name the template they were made with), so a template that writes more gets
#: a new name with a version suffix, and the name without it keeps writing what it wrote.
#: ``-v2``: the fresh view (per server the incoming Mbit and tasks, per task the slot's
#: arrivals and undecided tasks) and, where estimates are printed, the incoming-aware one.
FRESH_VIEW_SUFFIX = "-v2"


def quantize_state(state: TaskState, decimals: int, carried: frozenset[str] | None = None) -> TaskState:
    """``state`` rounded as a template writes it, without device/slot (a prompt carries neither).

    Follows the schema's rounding (:class:`comllm.state.FieldSpec`): quantities (task size,
    waits, upload rate, queued and incoming Mbit) get ``decimals`` decimals; constants and
    load-history counts get ``max(decimals, CONSTANT_DECIMALS)``; counts are integers.
    Fields outside ``carried`` (default: every field but the fresh-view ones) take the
    schema's default, as a prompt without them reads back.
    """
    cd = max(decimals, CONSTANT_DECIMALS)
    if carried is None:
        carried = ALL_FIELDS - FRESH_VIEW_FIELDS

    def q(spec: FieldSpec, x: Any) -> Any:
        if spec.quantize == "meta" or spec.name not in carried:
            return spec.default
        if spec.quantize == "label":
            return x
        if spec.quantize == "count":
            return int(x)
        d = decimals if spec.quantize == "quantity" else cd
        if isinstance(x, tuple):
            return tuple(float(round(h, d)) + 0.0 for h in x)
        return float(round(x, d)) + 0.0  # + 0.0 turns -0.0 into 0.0

    servers = tuple(
        ServerView(**{spec.name: q(spec, getattr(s, spec.name)) for spec in server_fields()}) for s in state.servers
    )
    return TaskState(servers=servers, **{spec.name: q(spec, getattr(state, spec.name)) for spec in task_fields()})


class TemplateStyle(Protocol):
    """The rendering choices of one template family, as the perturbations see them (a frozen dataclass).

    * :attr:`ORDERS`: the fields that are orders of keys (``shuffle-fields`` moves each, in
      this order);
    * ``server_order``: a permutation of server indices (ids kept, only the lines move) or
      ``None`` for 1..N (``shuffle-servers``);
    * ``labels`` (key -> word written) and :meth:`word_tables` (each key's words, the
      canonical one first; ``paraphrase``);
    * one ``<kind>_unit`` field per kind of :data:`comllm.text.units.KINDS` it writes (``units``);
    * ``numbers``, one of :attr:`NUMBER_FORMATS` (``numbers``).

    :attr:`PERTURBABLE` names which of these a family has (``orders``, ``servers``,
    ``labels``, ``units``, ``numbers``); :attr:`FAMILY` names the family in messages.
    """

    FAMILY: ClassVar[str]
    PERTURBABLE: ClassVar[frozenset[str]]
    ORDERS: ClassVar[tuple[str, ...]]
    NUMBER_FORMATS: ClassVar[tuple[str, ...]]
    server_order: tuple[int, ...] | None

    def word_tables(self) -> list[dict[str, tuple[str, ...]]]:
        """Each labelled key's words (canonical first), one table per kind, in the order ``paraphrase`` draws."""
        ...


class Template:
    """How a state becomes a prompt and an action an answer, in one language and number format.

    Subclasses implement :meth:`render_prompt`, :meth:`render_answer` and, when the
    template carries the whole state, :meth:`render_fields` / :meth:`parse_fields`
    (the official COMLLM record form: an ``input`` dict of strings, one entry per
    field and per server) and :meth:`parse_prompt`.
    """

    name: str = ""
    lang: str = "en"  # 'en' | 'zh'
    decimals: int = 4  # decimals of the quantities (sizes, waits, rates, queues)
    carries_state: bool = True  # False: the prompt cannot be read back into a state
    fresh_view: bool = False  # True: writes the fresh-view fields (the ``-v2`` templates)
    description: str = ""
    style: Any = None  # a TemplateStyle; None: one way of writing only (it takes no perturbation)

    # -------------------------------------------------------------- prompts
    def render_prompt(self, state: TaskState) -> str:
        raise NotImplementedError

    def parse_prompt(self, text: str) -> TaskState:
        """The state a prompt of this template describes; :class:`TextError` naming the field if it cannot."""
        self._need_state()
        return parse_prompt_text(text)

    @property
    def printed_estimate(self) -> str:
        """The one-step estimate (a name of :data:`comllm.cost.ESTIMATES`) this template's prompts print,
        which a cost head trained on them regresses (``comllm sft --cost-head``): the fresh view's
        ``incoming`` for a ``-v2`` template, the paper's formula otherwise."""
        return "incoming" if self.fresh_view else "paper"

    def estimate_costs(self, batch: StateBatch) -> np.ndarray:
        """:attr:`printed_estimate` of every action of ``batch``, slots, shape ``(B, N + 1)``."""
        return estimate_costs(batch, self.printed_estimate)

    @property
    def carried(self) -> frozenset[str]:
        """The state fields this template writes (the fresh-view ones only if :attr:`fresh_view`)."""
        return ALL_FIELDS if self.fresh_view else ALL_FIELDS - FRESH_VIEW_FIELDS

    def quantize(self, state: TaskState) -> TaskState:
        """``state`` rounded to what this template carries: ``parse_prompt(render_prompt(q)) == q``."""
        self._need_state()
        return quantize_state(state, self.decimals, self.carried)

    @property
    def instruction(self) -> str:
        """The task description that heads a prompt (the ``instruction`` of the official format)."""
        return ""

    def render_fields(self, state: TaskState) -> dict[str, Any]:
        """The state as an ordered dict ``label -> value`` (the ``input`` of the official format)."""
        raise TextError(f"template '{self.name}' has no field form")

    def parse_fields(self, fields: dict[str, Any]) -> TaskState:
        """Inverse of :meth:`render_fields`; unknown keys are errors (they name the key)."""
        self._need_state()
        return parse_field_items(list(fields.items()), strict=True)

    def with_style(self, style: Any = None, /, **changes: Any) -> "Template":
        """This template writing in ``style`` (default: its own) with the fields ``changes`` changed.

        ``paper.with_style(header=None)``; ``compact.with_style(other_style)``.
        """
        if self.style is None:
            raise TextError(f"template '{self.name}' has no style: it is written one way only")
        st = self.style if style is None else style
        if changes:
            st = dataclasses.replace(st, **changes)
        if dataclasses.is_dataclass(self):
            return dataclasses.replace(self, style=st)
        out = copy.copy(self)
        out.style = st
        return out

    # -------------------------------------------------------------- answers
    def answers(self, n_servers: int) -> list[str]:
        """Every valid answer for ``n_servers`` servers, in action order 0..N."""
        return _answers.answer_strings(n_servers, self.lang)

    def render_answer(self, action: int, reasoning: str | None = None) -> str:
        """The answer string of ``action`` (0 local, j server j), after ``reasoning`` if given."""
        return _answers.render_answer(action, self.lang, reasoning)

    def parse_answer(self, text: str, n_servers: int) -> int | None:
        """The action an answer names (either language, messy text tolerated); ``None`` if none. Never raises."""
        return _answers.parse_answer(text, n_servers)

    def reasoning_trace(self, state: TaskState) -> str:
        """A short reasoning trace from the cost model, in this template's language."""
        return reasoning_trace(state, lang=self.lang)

    # --------------------------------------------------------------- helpers
    def _need_state(self) -> None:
        if not self.carries_state:
            raise TextError(f"template '{self.name}' does not carry the state; it cannot be parsed back")

    def __repr__(self) -> str:
        return f"Template({self.name!r}, lang={self.lang!r})"
