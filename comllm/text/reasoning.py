"""Short reasoning traces (the paper's multi-turn reasoning), built from the cost model.

One line per action with the terms of its estimated latency (slots), then the
best action. English::

    local: wait 3.00 + compute 4.98 = 7.98
    server 1: wait 0.00 + upload 3.00 + compute 0.30 = 3.29
    best: server 1 (3.29 slots, within the 10-slot max delay)

``Template.render_answer(action, reasoning=trace)`` appends the marked final
answer (``answer: server 1`` / ``决策：卸载到边缘服务器1``), which
``parse_answer`` reads.
"""

from __future__ import annotations

import numpy as np

from comllm.state import TaskState
from comllm.text.answers import action_name, render_answer
from comllm.text.derived import action_terms


def reasoning_trace(state: TaskState, lang: str = "en", decimals: int = 2) -> str:
    """The trace of ``state`` in ``lang`` ('en' or 'zh'); numbers have ``decimals`` decimals."""
    terms = action_terms(state)
    f = lambda x: f"{x:.{decimals}f}"  # noqa: E731
    best = terms[int(np.argmin([t.est for t in terms]))]
    lines = []
    for t in terms:
        if lang == "zh":
            parts = [f"等待 {f(t.wait)}"] + ([f"传输 {f(t.upload)}"] if t.action else []) + [f"计算 {f(t.compute)}"]
        else:
            parts = [f"wait {f(t.wait)}"] + ([f"upload {f(t.upload)}"] if t.action else []) + [f"compute {f(t.compute)}"]
        lines.append(f"{action_name(t.action, lang)}: {' + '.join(parts)} = {f(t.est)}")
    within = best.est <= state.max_delay
    name = render_answer(best.action, lang)
    if lang == "zh":
        note = "不超过" if within else "超过"
        lines.append(f"最低延迟: {name} ({f(best.est)} 时间槽, {note}最大延迟 {state.max_delay} 时间槽)")
    else:
        note = "within" if within else "above"
        lines.append(f"best: {name} ({f(best.est)} slots, {note} the {state.max_delay}-slot max delay)")
    return "\n".join(lines)
