"""Text in and out: the one module that turns states into prompts and model output into actions.

Templates (``get_template(name)``):

* ``paper`` (default): English, the raw state, one line per field and per server, units written out;
* ``paper-zh``: the official COMLLM Chinese format, field for field;
* ``annotated``: ``paper`` with 2 decimals plus one line per action of cost-model quantities;
* ``estimates``: only each action's estimated latency, one short line per action;
* ``paper-v2``, ``paper-zh-v2``, ``annotated-v2``, ``estimates-v2`` (and the compact
  ``*-compact-v2``): the same plus the fresh view (per server the incoming Mbit and
  tasks, per task the slot's arrivals and undecided tasks); the annotated and estimates
  ones print the incoming-aware estimate and say so. A template's name promises its
  text (checkpoints and datasets name theirs), so new content gets a new ``-v2`` name.

Answers are ``local`` / ``server K`` (English) and ``本地执行`` / ``卸载到边缘服务器K``
(Chinese); :func:`parse_answer` reads either language and never raises.
Prompt perturbations live in :mod:`comllm.text.perturb`.

Modules, each importing only those above it: :mod:`~comllm.text.errors`,
:mod:`~comllm.text.units` (units and number formats), :mod:`~comllm.text.vocab` (words
and orders), :mod:`~comllm.text.answers`, :mod:`~comllm.text.derived`,
:mod:`~comllm.text.reasoning`, :mod:`~comllm.text.parse`, :mod:`~comllm.text.template`
(the interface and the style protocol), the renderers :mod:`~comllm.text.english`,
:mod:`~comllm.text.chinese`, :mod:`~comllm.text.compact`, then
:mod:`~comllm.text.registry` (the table of templates) and :mod:`~comllm.text.perturb`.
"""

from __future__ import annotations

from comllm.state import TaskState
from comllm.text.answers import answer_strings, parse_answer, render_answer
from comllm.text.chinese import INSTRUCTION_ZH, ChineseStyle, ChineseTemplate
from comllm.text.compact import CompactStyle, CompactTemplate
from comllm.text.english import EstimatesTemplate, PaperTemplate, Style
from comllm.text.errors import TextError
from comllm.text.parse import parse_field_items, parse_prompt_text
from comllm.text.reasoning import reasoning_trace
from comllm.text.registry import DEFAULT_TEMPLATE, TEMPLATES, get_template, register_template
from comllm.text.template import Template, TemplateStyle, quantize_state


def parse_prompt(text: str) -> TaskState:
    """The state of a prompt of any state-carrying template, either language."""
    return parse_prompt_text(text)


__all__ = [
    "DEFAULT_TEMPLATE",
    "INSTRUCTION_ZH",
    "TEMPLATES",
    "ChineseStyle",
    "ChineseTemplate",
    "CompactStyle",
    "CompactTemplate",
    "EstimatesTemplate",
    "PaperTemplate",
    "Style",
    "Template",
    "TemplateStyle",
    "TextError",
    "answer_strings",
    "get_template",
    "parse_answer",
    "parse_field_items",
    "parse_prompt",
    "parse_prompt_text",
    "quantize_state",
    "reasoning_trace",
    "register_template",
    "render_answer",
]
