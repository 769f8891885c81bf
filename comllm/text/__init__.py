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
"""

from __future__ import annotations

import importlib

from comllm.state import TaskState
from comllm.text.answers import answer_strings, parse_answer, render_answer
from comllm.text.chinese import FIELD_ORDER_V2 as ZH_FIELD_ORDER_V2
from comllm.text.chinese import INSTRUCTION_ZH, ChineseTemplate
from comllm.text.english import FIELD_ORDER_V2, SERVER_ATTR_ORDER_V2, EstimatesTemplate, PaperTemplate, Style
from comllm.text.parse import parse_field_items, parse_prompt_text
from comllm.text.reasoning import reasoning_trace
from comllm.text.template import Template, TextError, quantize_state

DEFAULT_TEMPLATE = "paper"

TEMPLATES: dict[str, Template] = {
    "paper": PaperTemplate(),
    "paper-zh": ChineseTemplate(),
    "annotated": PaperTemplate(
        name="annotated",
        decimals=2,
        style=Style(header=None),
        derived=True,
        description="English, the raw state (2 decimals) plus one line per action: service rate and latency terms",
    ),
    "estimates": EstimatesTemplate(),
    # the fresh view (``-v2``: see comllm.text.template.FRESH_VIEW_SUFFIX)
    "paper-v2": PaperTemplate(
        name="paper-v2",
        style=Style(field_order=FIELD_ORDER_V2, attr_order=SERVER_ATTR_ORDER_V2),
        fresh_view=True,
        description="paper + the fresh view: slot arrivals / undecided tasks, incoming Mbit and tasks per server",
    ),
    "paper-zh-v2": ChineseTemplate(
        name="paper-zh-v2",
        field_order=ZH_FIELD_ORDER_V2,
        fresh_view=True,
        description="paper-zh + the fresh view in Chinese-labelled fields (本时间槽到达任务数, 在途任务量, ...)",
    ),
    "annotated-v2": PaperTemplate(
        name="annotated-v2",
        decimals=2,
        style=Style(header=None, field_order=FIELD_ORDER_V2, attr_order=SERVER_ATTR_ORDER_V2),
        derived=True,
        fresh_view=True,
        estimate="incoming",
        description="paper-v2 (2 decimals) + one line per action with the incoming-aware estimate's terms",
    ),
    "estimates-v2": EstimatesTemplate(
        name="estimates-v2",
        fresh_view=True,
        estimate="incoming",
        description="each action's incoming-aware estimate (slots), the slot's counts, each server's incoming traffic",
    ),
}


def register_template(template: Template) -> None:
    """Add ``template`` to :data:`TEMPLATES` under its name (template modules call this on import)."""
    if not template.name:
        raise TextError("a template needs a name")
    TEMPLATES[template.name] = template


def get_template(name: str | Template | None = None) -> Template:
    """The template called ``name`` (``None``: the default, ``paper``); a Template passes through."""
    if isinstance(name, Template):
        return name
    key = DEFAULT_TEMPLATE if name is None else name
    if key not in TEMPLATES:
        raise TextError(f"unknown template '{name}' (known: {', '.join(TEMPLATES)})")
    return TEMPLATES[key]


def parse_prompt(text: str) -> TaskState:
    """The state of a prompt of any state-carrying template, either language."""
    return parse_prompt_text(text)


# modules of this package that register more templates on import
_PLUGINS = ("comllm.text.compact",)
for _mod in _PLUGINS:
    try:
        importlib.import_module(_mod)
    except ModuleNotFoundError as _err:
        if _err.name != _mod:
            raise

__all__ = [
    "DEFAULT_TEMPLATE",
    "INSTRUCTION_ZH",
    "TEMPLATES",
    "ChineseTemplate",
    "EstimatesTemplate",
    "PaperTemplate",
    "Style",
    "Template",
    "TextError",
    "answer_strings",
    "get_template",
    "parse_answer",
    "parse_field_items",
    "parse_prompt",
    "quantize_state",
    "reasoning_trace",
    "register_template",
    "render_answer",
]
