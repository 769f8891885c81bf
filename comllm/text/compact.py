"""Compact English templates tuned for the embedded value-token model.

Short words, one line per action, every number a plain decimal with at most 2
decimals (the value tokens' resolution), no thousands separators.

* ``estimates-compact``: only each action's estimated latency (DESIGN §3), one
  line per action. The easy signal; a model that reads it is the greedy oracle.
* ``annotated-compact``: the raw state (task, device, every server's type, CPU,
  active count, queued Mbit and load history) with each action's estimate
  placed FIRST on its line, so the argmin the estimates teach stays easy to
  read next to the raw numbers (the estimate last on the line stalled training,
  see notes/lm-on-cpu.md).
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
"""

from __future__ import annotations

import numpy as np

from comllm.cost import action_costs
from comllm.state import StateBatch, TaskState
from comllm.text.numbers import compact as _num
from comllm.text.template import Template, quantize_state

_TYPE_WORD = {"high-performance": "high", "standard": "std", "energy-saving": "eco"}


def estimates(state: TaskState) -> np.ndarray:
    """Estimated latency (slots) of every action of ``state``, shape ``(N + 1,)`` (DESIGN §3)."""
    return action_costs(StateBatch.from_states([state]))[0]


def _n(x: float) -> str:
    return _num(float(x), 2)


class _Compact(Template):
    lang = "en"
    decimals = 2
    carries_state = False
    with_estimates = True
    with_raw = True

    @property
    def action_line_start(self) -> int:
        """Index of the prompt line of action 0 (local); action ``a`` is on line ``action_line_start + a``."""
        return 1 if self.with_raw else 0

    def quantize(self, state: TaskState) -> TaskState:
        return quantize_state(state, self.decimals)

    def render_prompt(self, state: TaskState) -> str:
        lines = []
        est = estimates(state) if self.with_estimates else None

        def head(label: str, k: int) -> str:
            return f"{label}: est {_n(est[k])}" + (" |" if self.with_raw else "") if est is not None else f"{label}:"

        if self.with_raw:
            lines.append(
                f"task {_n(state.task_size)} Mbit deadline {state.max_delay} rate {_n(state.upload_rate)} Mbit/slot"
                f" txwait {_n(state.tx_wait)} slot {_n(state.slot_s)} s penalty {_n(state.drop_penalty)}"
            )
            lines.append(
                f"{head('local', 0)} wait {_n(state.local_wait)} cpu {_n(state.device_ghz)} GHz"
                f" density {_n(state.device_cycles_per_bit)}"
            )
        else:
            lines.append(head("local", 0))
        for j, s in enumerate(state.servers, start=1):
            line = head(f"server {j}", j)
            if self.with_raw:
                line += f" {_TYPE_WORD.get(s.type, s.type)} cpu {_n(s.cpu_ghz)} GHz"
                if s.cycles_per_bit != state.device_cycles_per_bit:
                    line += f" density {_n(s.cycles_per_bit)}"
                line += f" active {int(s.active)} queue {_n(s.queued_mbit)} Mbit load " + " ".join(
                    _n(h) for h in s.history
                )
            lines.append(line)
        lines.append("answer:")
        return "\n".join(lines)


class EstimatesCompact(_Compact):
    name = "estimates-compact"
    with_raw = False
    description = "each action's estimated latency only, one short line per action (embedded model)"


class AnnotatedCompact(_Compact):
    name = "annotated-compact"
    description = "raw state, each action's estimated latency first on its line (embedded model)"


class RawCompact(_Compact):
    name = "raw-compact"
    with_estimates = False
    description = "raw state only, one short line per action (embedded model)"


COMPACT_TEMPLATES = (EstimatesCompact(), AnnotatedCompact(), RawCompact())


def _register() -> None:
    try:
        from comllm.text import register_template
    except ImportError:  # the registry is not there (yet): the classes still work on their own
        return
    for t in COMPACT_TEMPLATES:
        register_template(t)


_register()
