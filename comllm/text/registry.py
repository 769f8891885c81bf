"""The templates by name (:data:`TEMPLATES`): every template of the package, listed once, in one table."""

from __future__ import annotations

from comllm.text.chinese import ChineseStyle, ChineseTemplate
from comllm.text.compact import COMPACT_TEMPLATES, COMPACT_TEMPLATES_V2
from comllm.text.english import EstimatesTemplate, PaperTemplate, Style
from comllm.text.errors import TextError
from comllm.text.template import Template
from comllm.text.vocab import FIELD_ORDER_V2, SERVER_ATTR_ORDER_V2

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
        style=ChineseStyle(field_order=FIELD_ORDER_V2),
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
    # the compact templates of the embedded value-token model (comllm.text.compact)
    **{t.name: t for t in (*COMPACT_TEMPLATES, *COMPACT_TEMPLATES_V2)},
}


def register_template(template: Template) -> None:
    """Add ``template`` to :data:`TEMPLATES` under its name (a user's own template)."""
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
