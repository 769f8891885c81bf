"""Prompt perturbations for the robustness study: named, seedable, meaning-preserving.

Each :class:`Perturbation` changes how a state is written, never what it says:

* ``shuffle-fields``: field lines and the attributes inside device and server lines in random order;
* ``paraphrase``: other field and attribute names (from :data:`comllm.text.vocab.FIELDS` / ``ATTRS``);
* ``units``: other units (kbit, ms or s, kbit/slot or Mbit/s, MHz, Gcycles/Mbit, kbit/s);
* ``numbers``: other number formatting (no trailing zeros, more decimals, scientific notation);
* ``shuffle-servers``: server lines in random order, ids kept;
* ``all``: every one of the above at once.

A perturbation is a change of rendering :class:`~comllm.text.english.Style`, so
the tolerant parser reads a perturbed prompt back to the same state. Use it on
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

import zlib
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from comllm.state import TaskState
from comllm.text import vocab as V
from comllm.text.chinese import ChineseTemplate
from comllm.text.compact import NUMBER_FORMATS as COMPACT_NUMBER_FORMATS
from comllm.text.compact import FRESH_WORDS as COMPACT_FRESH_WORDS
from comllm.text.compact import WORDS as COMPACT_WORDS
from comllm.text.compact import CompactStyle, _Compact
from comllm.text.english import HEADER, NUMBER_FORMATS, PaperTemplate, Style
from comllm.text.template import Template, TextError

Restyle = Callable[[Style, np.random.Generator, int], Style]
RestyleCompact = Callable[[CompactStyle, np.random.Generator, int], CompactStyle]


def _moved(items: tuple, rng: np.random.Generator) -> tuple:
    """A random order of ``items`` other than the given one (when there are two or more)."""
    for _ in range(20):
        out = tuple(items[i] for i in rng.permutation(len(items)))
        if out != items or len(items) < 2:
            return out
    return items[1:] + items[:1]  # pragma: no cover  (20 identity draws in a row)


def _shuffle_fields(style: Style, rng: np.random.Generator, n: int) -> Style:
    return replace(
        style,
        field_order=_moved(style.field_order, rng),
        attr_order=_moved(style.attr_order, rng),
        device_attr_order=_moved(style.device_attr_order, rng),
    )


def _paraphrase(style: Style, rng: np.random.Generator, n: int) -> Style:
    labels = dict(style.labels)
    tables = [V.FIELDS, V.ATTRS]
    if any(k in V.FRESH_FIELDS for k in style.field_order) or any(k in V.FRESH_ATTRS for k in style.attr_order):
        tables += [V.FRESH_FIELDS, V.FRESH_ATTRS]  # a -v2 style (drawn after: the others' draws stay as they were)
    for table in tables:
        for key, (en, _) in table.items():
            labels[key] = en[int(rng.integers(1, len(en)))]  # never the canonical label
    return replace(style, labels=labels)


def _unit_choice(rng: np.random.Generator) -> dict[str, str]:
    """The units both template kinds write under ``units`` (one draw for the time and rate units)."""
    return {
        "data_unit": "kbit",
        "time_unit": ("ms", "s")[int(rng.integers(2))],
        "rate_unit": ("kbit/slot", "Mbit/s")[int(rng.integers(2))],
        "freq_unit": "MHz",
        "density_unit": "Gcycles/Mbit",
        "slot_unit": "ms",
    }


def _units(style: Style, rng: np.random.Generator, n: int) -> Style:
    return replace(style, **_unit_choice(rng), link_unit="kbit/s")


def _numbers(style: Style, rng: np.random.Generator, n: int) -> Style:
    others = [f for f in NUMBER_FORMATS if f != style.numbers]
    return replace(style, numbers=others[int(rng.integers(len(others)))])


def _shuffle_servers(style: Any, rng: np.random.Generator, n: int) -> Any:
    """Server lines in random order (both style kinds carry ``server_order``)."""
    return replace(style, server_order=_moved(tuple(range(n)), rng))


def _chain(*steps: Callable[[Any, np.random.Generator, int], Any]) -> Callable[[Any, np.random.Generator, int], Any]:
    """One restyle applying ``steps`` in order (the ``all`` perturbation)."""

    def restyle(style: Any, rng: np.random.Generator, n: int) -> Any:
        for f in steps:
            style = f(style, rng, n)
        return style

    return restyle


_all = _chain(_shuffle_fields, _paraphrase, _units, _numbers, _shuffle_servers)


# ----------------------------------------------------------- compact templates
def _shuffle_fields_compact(style: CompactStyle, rng: np.random.Generator, n: int) -> CompactStyle:
    return replace(
        style,
        task_attrs=_moved(style.task_attrs, rng),
        local_attrs=_moved(style.local_attrs, rng),
        server_attrs=_moved(style.server_attrs, rng),
    )


def _paraphrase_compact(style: CompactStyle, rng: np.random.Generator, n: int) -> CompactStyle:
    labels = dict(style.labels)
    tables = [COMPACT_WORDS, COMPACT_FRESH_WORDS] if style.fresh_view else [COMPACT_WORDS]  # -v2: drawn after
    for table in tables:
        for key, words in table.items():
            labels[key] = words[int(rng.integers(1, len(words)))]  # never the canonical word
    return replace(style, labels=labels)


def _units_compact(style: CompactStyle, rng: np.random.Generator, n: int) -> CompactStyle:
    return replace(style, **_unit_choice(rng))


def _numbers_compact(style: CompactStyle, rng: np.random.Generator, n: int) -> CompactStyle:
    others = [f for f in COMPACT_NUMBER_FORMATS if f != style.numbers]
    return replace(style, numbers=others[int(rng.integers(len(others)))])


_all_compact = _chain(_shuffle_fields_compact, _paraphrase_compact, _units_compact, _numbers_compact, _shuffle_servers)


@dataclass(frozen=True)
class Perturbation:
    """A named change of rendering style; call it on a prompt (``p(prompt, seed)``) to perturb the text."""

    name: str
    description: str
    restyle: Restyle
    restyle_compact: RestyleCompact  # the same change of a compact template's style
    zh: bool = False  # also defined for the Chinese template (the shuffles)

    def style(self, seed: int, n_servers: int, base: Style | CompactStyle | None = None, salt: int = 0) -> Any:
        """The perturbed style for a state with ``n_servers`` servers (``salt`` varies the draw per prompt).

        ``base`` is an English :class:`Style` (default) or a :class:`CompactStyle`; the result is of its kind.
        """
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, salt & 0xFFFFFFFF])
        if isinstance(base, CompactStyle):
            return self.restyle_compact(base, rng, n_servers)
        return self.restyle(base if base is not None else Style(), rng, n_servers)

    def __call__(self, prompt: str, seed: int = 0) -> str:
        """``prompt`` (of ``paper``, ``paper-zh`` or their ``-v2``) written differently, same state."""
        from comllm.text.parse import _CJK, parse_prompt_text, split_prompt

        from comllm.text import get_template

        state = parse_prompt_text(prompt)
        # a prompt with the fresh view's slot counts is a -v2 prompt: it is rewritten as one
        fresh = any(V.FIELD_INDEX.get(V.norm_label(k)) in V.FRESH_FIELDS for k, _ in split_prompt(prompt))
        if _CJK.search(prompt):
            base: Template = get_template("paper-zh-v2" if fresh else "paper-zh")
        else:
            header = prompt.splitlines()[0] == HEADER if prompt else False
            paper = get_template("paper-v2" if fresh else "paper")
            assert isinstance(paper, PaperTemplate)
            base = paper.with_style(header=HEADER if header else None)
        return perturbed_template(self.name, seed, base=base).render_prompt(state)


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation(
            "shuffle-fields",
            "field lines and attributes in random order",
            _shuffle_fields,
            _shuffle_fields_compact,
            zh=True,
        ),
        Perturbation("paraphrase", "other names for every field and attribute", _paraphrase, _paraphrase_compact),
        Perturbation("units", "kbit, ms or s, kbit/slot or Mbit/s, MHz, Gcycles/Mbit, kbit/s", _units, _units_compact),
        Perturbation("numbers", "other decimals or scientific notation", _numbers, _numbers_compact),
        Perturbation(
            "shuffle-servers",
            "server lines in random order, ids kept",
            _shuffle_servers,
            _shuffle_servers,
            zh=True,
        ),
        Perturbation("all", "every perturbation at once", _all, _all_compact),
    )
}


def get_perturbation(name: str) -> Perturbation:
    if name not in PERTURBATIONS:
        raise TextError(f"unknown perturbation '{name}' (known: {', '.join(PERTURBATIONS)})")
    return PERTURBATIONS[name]


class PerturbedTemplate(Template):
    """A template whose every prompt is perturbed; the draw depends on ``seed`` and on the prompt."""

    def __init__(self, base: Template, perturbation: Perturbation, seed: int = 0) -> None:
        if not isinstance(base, (PaperTemplate, ChineseTemplate, _Compact)):
            raise TextError(
                "perturbations apply to the paper, annotated, paper-zh and compact templates"
                f" (estimates-compact, annotated-compact, raw-compact), not '{base.name}'"
            )
        if isinstance(base, ChineseTemplate) and not perturbation.zh:
            raise TextError(f"perturbation '{perturbation.name}' is not defined for the Chinese template")
        self.base = base
        self.perturbation = perturbation
        self.seed = int(seed)
        self.name = f"{base.name}+{perturbation.name}"
        self.lang = base.lang
        self.decimals = base.decimals
        self.carries_state = base.carries_state
        self.description = f"{base.name} with perturbation '{perturbation.name}' (seed {seed})"

    @property
    def instruction(self) -> str:
        return self.base.instruction

    def quantize(self, state: TaskState) -> TaskState:
        return self.base.quantize(state)

    def _template_for(self, state: TaskState) -> Template:
        salt = zlib.crc32(self.base.render_prompt(state).encode())
        if isinstance(self.base, _Compact):
            return self.base.with_style(self.perturbation.style(self.seed, state.n_servers, self.base.style, salt))
        if isinstance(self.base, ChineseTemplate):
            st = self.perturbation.style(self.seed, state.n_servers, Style(field_order=self.base.field_order), salt)
            return replace(self.base, field_order=st.field_order, server_order=st.server_order)
        st = self.perturbation.style(self.seed, state.n_servers, self.base.style, salt)
        return replace(self.base, style=st)

    def render_prompt(self, state: TaskState) -> str:
        return self._template_for(state).render_prompt(state)

    def render_fields(self, state: TaskState) -> dict:
        return self._template_for(state).render_fields(state)


def perturbed_template(name: str, seed: int = 0, base: str | Template = "paper") -> PerturbedTemplate:
    """The template ``base`` with perturbation ``name`` applied to every prompt."""
    from comllm.text import get_template

    t = get_template(base) if isinstance(base, str) else base
    return PerturbedTemplate(t, get_perturbation(name), seed)
