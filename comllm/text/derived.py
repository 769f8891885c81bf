"""Per-action quantities derived from the cost model (comllm.cost), as prompts and traces show them.

The estimated latency of each action is :func:`comllm.cost.action_costs`; its
terms are recovered from it (wait, upload, compute), so the text never holds a
second copy of the cost formula's compute term. ``incoming=True`` uses the
incoming-aware estimate (``action_costs(batch, incoming=True)``: each server's
incoming Mbit counted as queued), which the ``-v2`` annotated templates print.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from comllm.cost import action_costs
from comllm.state import StateBatch, TaskState


@dataclass(frozen=True)
class ActionTerms:
    """One action's estimate in slots; ``service`` is the rate the task would get (Mbit/slot)."""

    action: int
    wait: float  # slots before the task's own transfer or computation starts
    upload: float  # slots to upload (0 for local)
    compute: float  # slots to compute, queued bits at that server included
    service: float  # Mbit/slot the task would get (a server's share after the new task joins)
    est: float  # total estimated latency, slots


def action_terms(state: TaskState, costs: np.ndarray | None = None, incoming: bool = False) -> list[ActionTerms]:
    """The terms of every action (0 = local, j = server j) of ``state`` (``incoming``: the incoming-aware estimate)."""
    if costs is None:
        costs = action_costs(StateBatch.from_states([state]), incoming=incoming)[0]
    rate = max(state.upload_rate, 1e-9)
    local_compute = float(costs[0]) - state.local_wait
    out = [
        ActionTerms(
            action=0,
            wait=state.local_wait,
            upload=0.0,
            compute=local_compute,
            service=state.task_size / local_compute if local_compute > 0 else float("inf"),
            est=float(costs[0]),
        )
    ]
    upload = state.task_size / rate
    for j, s in enumerate(state.servers, start=1):
        compute = float(costs[j]) - state.tx_wait - upload
        out.append(
            ActionTerms(
                action=j,
                wait=state.tx_wait,
                upload=upload,
                compute=compute,
                service=(s.queued_mbit + (s.incoming_mbit if incoming else 0.0) + state.task_size) / compute
                if compute > 0
                else float("inf"),
                est=float(costs[j]),
            )
        )
    return out
