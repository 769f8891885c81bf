"""Prompt perturbations for the robustness study: named, seedable, meaning-preserving.

Each :class:`Perturbation` changes how a state is written, never what it says:

* ``shuffle-fields``: field lines and the attributes inside device and server lines in random order;
* ``paraphrase``: other field and attribute names (from :data:`comllm.text.vocab.FIELDS` / ``ATTRS``);
* ``units``: other units (kbit, ms or s, kbit/slot or Mbit/s, MHz, Gcycles/Mbit, kbit/s);
* ``numbers``: other number formatting (no trailing zeros, more decimals, scientific notation);
* ``shuffle-servers``: server lines in random order, ids kept;
* ``all``: every one of the above at once.

A perturbation is a change of the template's style, made through the style
protocol alone (:class:`~comllm.text.template.TemplateStyle`: one function per
perturbation for every family of templates), so the tolerant parser reads a
perturbed prompt back to the same state. Use it on
text (``PERTURBATIONS["units"](prompt, seed=1)``: the prompt is parsed and
re-rendered) or as a template (``perturbed_template("units", seed=1)``) whose
every prompt is perturbed with a draw seeded by ``seed`` and the prompt itself.
The Chinese template only supports the two shuffles (its wording and units are
the official format's).

The compact templates of the embedded model (``estimates-compact``,
``annotated-compact``, ``raw-compact``) take every perturbation, as a change of
their :class:`~comllm.text.compact.CompactStyle` (same names, same meanings):

* ``shuffle-fields``: the attributes of the task line and of each action line in
  random order (an estimate too; each action keeps its one line, its ``local:`` /
  ``server K:`` head first). ``estimates-compact`` writes one attribute per line:
  there it changes nothing;
* ``paraphrase``: another word for every label and server type, drawn from
  :data:`comllm.text.compact.WORDS` (``local``, ``server K`` and ``answer:``, the
  answer vocabulary, stay);
* ``units``: kbit, ms or s for the deadline, waits and estimates, kbit/slot or
  Mbit/s, MHz, Gcycles/Mbit, a slot in ms, numbers converted;
* ``numbers``: exactly 3 decimals (no rounding to the value tokens' 0.01, trailing
  zeros), exactly 6 decimals (counts too) or scientific notation;
* ``shuffle-servers``: server lines in random order, ids kept, ``local`` first.

Compact prompts cannot be parsed back, so the text-level call (``p(prompt)``)
stays for the ``paper`` and ``paper-zh`` prompts (and their ``-v2``: a prompt with the
fresh view's slot counts is rewritten as one); use :func:`perturbed_template`.

The ``-v2`` templates take the same perturbations; their fresh-view labels and words
(``vocab.FRESH_FIELDS`` / ``FRESH_ATTRS``, ``compact.FRESH_WORDS``) are paraphrased
too, drawn after the others, so a template of before is perturbed exactly as it was.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from comllm.state import TaskState
from comllm.text import vocab as V
from comllm.text.english import HEADER, Style
from comllm.text.errors import TextError
from comllm.text.parse import is_chinese, parse_prompt_text, split_prompt
from comllm.text.registry import get_template
from comllm.text.template import Template

#: a change of style: (style, the draw's generator, number of servers) -> style of the same kind
Restyle = Callable[[Any, np.random.Generator, int], Any]


def _moved(items: tuple, rng: np.random.Generator) -> tuple:
    """A random order of ``items`` other than the given one (when there are two or more)."""
    for _ in range(20):
        out = tuple(items[i] for i in rng.permutation(len(items)))
        if out != items or len(items) < 2:
            return out
    return items[1:] + items[:1]  # pragma: no cover  (20 identity draws in a row)


def _shuffle_fields(style: Any, rng: np.random.Generator, n: int) -> Any:
    """Each order of the style (:attr:`TemplateStyle.ORDERS`, drawn in that order) moved."""
    return replace(style, **{name: _moved(getattr(style, name), rng) for name in style.ORDERS})


def _paraphrase(style: Any, rng: np.random.Generator, n: int) -> Any:
    """Another word for every labelled key (never the canonical one), table by table."""
    labels = dict(style.labels)
    for table in style.word_tables():  # a -v2 style's fresh-view words last: the others' draws stay as they were
        for key, words in table.items():
            labels[key] = words[int(rng.integers(1, len(words)))]
    return replace(style, labels=labels)


def _units(style: Any, rng: np.random.Generator, n: int) -> Any:
    """Other units: the same draw (time, then rate) for every family; each style takes the kinds it writes."""
    choice = {
        "data_unit": "kbit",
        "time_unit": ("ms", "s")[int(rng.integers(2))],
        "rate_unit": ("kbit/slot", "Mbit/s")[int(rng.integers(2))],
        "freq_unit": "MHz",
        "density_unit": "Gcycles/Mbit",
        "slot_unit": "ms",
        "link_unit": "kbit/s",
    }
    fields = {f.name for f in dataclasses.fields(style)}
    return replace(style, **{k: v for k, v in choice.items() if k in fields})


def _numbers(style: Any, rng: np.random.Generator, n: int) -> Any:
    others = [f for f in style.NUMBER_FORMATS if f != style.numbers]
    return replace(style, numbers=others[int(rng.integers(len(others)))])


def _shuffle_servers(style: Any, rng: np.random.Generator, n: int) -> Any:
    """Server lines in random order (ids kept)."""
    return replace(style, server_order=_moved(tuple(range(n)), rng))


def _chain(*steps: Restyle) -> Restyle:
    """One restyle applying ``steps`` in order (the ``all`` perturbation)."""

    def restyle(style: Any, rng: np.random.Generator, n: int) -> Any:
        for f in steps:
            style = f(style, rng, n)
        return style

    return restyle


@dataclass(frozen=True)
class Perturbation:
    """A named change of rendering style; call it on a prompt (``p(prompt, seed)``) to perturb the text.

    ``changes``: what of a :class:`~comllm.text.template.TemplateStyle` it changes (its
    ``PERTURBABLE`` must hold them all).
    """

    name: str
    description: str
    restyle: Restyle
    changes: frozenset[str]

    def style(self, seed: int, n_servers: int, base: Any = None, salt: int = 0) -> Any:
        """The perturbed ``base`` style (default: the English :class:`Style`) for ``n_servers`` servers.

        ``salt`` varies the draw per prompt; the result is of the kind of ``base``.
        """
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, salt & 0xFFFFFFFF])
        return self.restyle(base if base is not None else Style(), rng, n_servers)

    def __call__(self, prompt: str, seed: int = 0) -> str:
        """``prompt`` (of ``paper``, ``paper-zh`` or their ``-v2``) written differently, same state."""
        state = parse_prompt_text(prompt)
        # a prompt with the fresh view's slot counts is a -v2 prompt: it is rewritten as one
        fresh = any(V.FIELD_INDEX.get(V.norm_label(k)) in V.FRESH_FIELDS for k, _ in split_prompt(prompt))
        if is_chinese(prompt):
            base = get_template("paper-zh-v2" if fresh else "paper-zh")
        else:
            header = prompt.splitlines()[0] == HEADER if prompt else False
            base = get_template("paper-v2" if fresh else "paper").with_style(header=HEADER if header else None)
        return perturbed_template(self.name, seed, base=base).render_prompt(state)


def _perturbation(name: str, description: str, restyle: Restyle, *changes: str) -> Perturbation:
    return Perturbation(name, description, restyle, frozenset(changes))


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        _perturbation("shuffle-fields", "field lines and attributes in random order", _shuffle_fields, "orders"),
        _perturbation("paraphrase", "other names for every field and attribute", _paraphrase, "labels"),
        _perturbation("units", "kbit, ms or s, kbit/slot or Mbit/s, MHz, Gcycles/Mbit, kbit/s", _units, "units"),
        _perturbation("numbers", "other decimals or scientific notation", _numbers, "numbers"),
        _perturbation("shuffle-servers", "server lines in random order, ids kept", _shuffle_servers, "servers"),
        _perturbation(
            "all",
            "every perturbation at once",
            _chain(_shuffle_fields, _paraphrase, _units, _numbers, _shuffle_servers),
            *("orders", "labels", "units", "numbers", "servers"),
        ),
    )
}


def get_perturbation(name: str) -> Perturbation:
    """The perturbation ``name``: a family of :data:`PERTURBATIONS`, or families joined by ``+``
    (``shuffle-fields+units``: each applied in turn, as ``all`` applies every one)."""
    if name in PERTURBATIONS:
        return PERTURBATIONS[name]
    parts = name.split("+")
    if len(parts) < 2 or any(p not in PERTURBATIONS for p in parts):
        raise TextError(f"unknown perturbation '{name}' (known: {', '.join(PERTURBATIONS)}, or families joined by '+')")
    chosen = [PERTURBATIONS[p] for p in parts]
    return Perturbation(name, "; then ".join(p.description for p in chosen), _chain(*(p.restyle for p in chosen)),
                        frozenset().union(*(p.changes for p in chosen)))  # fmt: skip


class PerturbedTemplate(Template):
    """A template whose every prompt is perturbed; the draw depends on ``seed`` and on the prompt."""

    def __init__(self, base: Template, perturbation: Perturbation, seed: int = 0) -> None:
        if base.style is None:
            raise TextError(
                "perturbations apply to the templates with a style (paper, annotated, paper-zh, the compact"
                f" ones: estimates-compact, annotated-compact, raw-compact, and their -v2), not '{base.name}'"
            )
        missing = perturbation.changes - base.style.PERTURBABLE
        if missing:
            raise TextError(
                f"perturbation '{perturbation.name}' is not defined for the {base.style.FAMILY} template"
                f" '{base.name}' (its style has no {', '.join(sorted(missing))} to change)"
            )
        self.base = base
        self.perturbation = perturbation
        self.seed = int(seed)
        self.name = f"{base.name}+{perturbation.name}"
        self.lang = base.lang
        self.decimals = base.decimals
        self.carries_state = base.carries_state
        self.fresh_view = base.fresh_view
        self.description = f"{base.name} with perturbation '{perturbation.name}' (seed {seed})"

    @property
    def instruction(self) -> str:
        return self.base.instruction

    def quantize(self, state: TaskState) -> TaskState:
        return self.base.quantize(state)

    @property
    def action_line_start(self) -> int | None:
        """The base's (a perturbation moves attributes and server lines, never the line an action list starts on)."""
        return getattr(self.base, "action_line_start", None)

    def _template_for(self, state: TaskState) -> Template:
        salt = zlib.crc32(self.base.render_prompt(state).encode())
        return self.base.with_style(self.perturbation.style(self.seed, state.n_servers, self.base.style, salt))

    def render_prompt(self, state: TaskState) -> str:
        return self._template_for(state).render_prompt(state)

    def render_fields(self, state: TaskState) -> dict:
        return self._template_for(state).render_fields(state)


def perturbed_template(name: str, seed: int = 0, base: str | Template = "paper") -> PerturbedTemplate:
    """The template ``base`` with perturbation ``name`` applied to every prompt."""
    t = get_template(base) if isinstance(base, str) else base
    return PerturbedTemplate(t, get_perturbation(name), seed)
