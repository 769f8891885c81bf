"""Open-loop evaluation (the reference's protocol): a policy decides every state of a fixed test set.

Each state is scored by the one-step cost model (:mod:`comllm.cost`), not by a
simulation: ``accuracy`` is the share of decisions equal to the oracle's,
``perf_ratio`` = oracle average cost / policy average cost (1.0 = the oracle).
Costs are latencies in slots; a decision whose cost is above the state's max
delay counts as a drop at the deadline (``avg_cost`` caps each cost there, as
the closed-loop metrics count a drop; ``*_raw`` keep the uncapped estimates).
An action outside 0..N is invalid and counts as a drop.

``oracle`` names the one-step estimate scored against (:data:`comllm.cost.ESTIMATES`):
``"paper"`` (the default) is the paper's cost model; ``"incoming"`` the fresh view's
(incoming Mbit counted as queued, the ``greedy:incoming`` policy, docs/model.md §6), the
target of the models trained on the ``-v2`` templates; ``"sharing"`` ``greedy:sharing``'s,
the target of the models trained on ``lean-sharing``.

States are grouped by server count into :class:`~comllm.state.StateBatch` es and
handed to ``policy.act``: a language-model policy renders them in its own
template, whatever prompt text the file holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from comllm.cost import ESTIMATES, estimate_costs, oracle_from_costs
from comllm.errors import ComllmError
from comllm.evaluate.metrics import jain_index, nan_to_none
from comllm.policies.base import Policy
from comllm.state import StateBatch, TaskState


@dataclass
class _Group:
    """Running sums for the states with one server count."""

    n_servers: int
    oracle: str = "paper"  # a name of comllm.cost.ESTIMATES
    n: int = 0
    correct: int = 0
    cost_match: int = 0
    cost: float = 0.0
    oracle_cost: float = 0.0
    cost_raw: float = 0.0
    oracle_cost_raw: float = 0.0
    drops: int = 0
    oracle_drops: int = 0
    out_of_range: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.counts = np.zeros(self.n_servers + 1, dtype=np.int64)

    def add(self, batch: StateBatch, actions: np.ndarray) -> None:
        costs = estimate_costs(batch, self.oracle)
        b = len(batch)
        deadline = batch.max_delay.astype(np.float64)
        oracle = oracle_from_costs(costs)
        best = costs[np.arange(b), oracle]
        valid = (actions >= 0) & (actions <= batch.n_servers)
        safe = np.where(valid, actions, 0)
        chosen = np.where(valid, costs[np.arange(b), safe], np.inf)
        self.n += b
        self.correct += int((valid & (actions == oracle)).sum())
        self.cost_match += int((chosen <= best + 1e-9).sum())
        self.cost += float(np.minimum(chosen, deadline).sum())
        self.oracle_cost += float(np.minimum(best, deadline).sum())
        self.cost_raw += float(np.where(valid, chosen, deadline).sum())
        self.oracle_cost_raw += float(best.sum())
        self.drops += int((chosen > deadline).sum())
        self.oracle_drops += int((best > deadline).sum())
        self.out_of_range += int((~valid).sum())
        self.counts += np.bincount(safe[valid], minlength=self.n_servers + 1)

    def summary(self) -> dict[str, Any]:
        offloads = self.counts[1:]
        return {
            "n": self.n,
            "accuracy": self.correct / self.n,
            "cost_match": self.cost_match / self.n,
            "perf_ratio": _ratio(self.oracle_cost, self.cost),
            "avg_cost": self.cost / self.n,
            "oracle_avg_cost": self.oracle_cost / self.n,
            "drop_rate": self.drops / self.n,
            "oracle_drop_rate": self.oracle_drops / self.n,
            "offload_share": float(offloads.sum()) / self.n,
            "jain_index": nan_to_none(jain_index(offloads)),
            "per_server_share": (offloads / offloads.sum()).tolist() if offloads.sum() else [0.0] * self.n_servers,
        }


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _state_of(item: Any) -> TaskState:
    if isinstance(item, TaskState):
        return item
    if hasattr(item, "task_state"):
        return item.task_state()
    raise ComllmError(f"open-loop evaluation takes records or task states, not {type(item).__name__}")


ORACLES = tuple(ESTIMATES)


def evaluate_open_loop(
    records: Iterable[Any], policy: Policy, chunk: int = 2048, seed: int = 0, oracle: str = "paper"
) -> dict[str, Any]:
    """Score ``policy`` on the states of ``records`` (Records or TaskStates), streamed in chunks.

    Returns a JSON-ready dict: ``n``, ``accuracy``, ``cost_match`` (share of decisions as
    cheap as the oracle's), ``perf_ratio``, ``avg_cost``, ``oracle_avg_cost`` (slots),
    their ``*_raw`` uncapped versions, ``drop_rate``, ``oracle_drop_rate``,
    ``invalid_rate``, ``jain_index`` (offload counts per server; the n-weighted mean
    over server counts when the set mixes them), ``offload_share`` and ``by_servers``
    (the same per server count).
    """
    if oracle not in ORACLES:
        raise ComllmError(f"oracle '{oracle}' must be one of {', '.join(ORACLES)}")
    policy.reset(seed)
    invalid0 = float(policy.stats.get("invalid", 0))
    groups: dict[int, _Group] = {}
    pending: dict[int, list[TaskState]] = {}

    def flush(n: int) -> None:
        states = pending.pop(n, [])
        if not states:
            return
        batch = StateBatch.from_states(states)
        actions = np.asarray(policy.act(batch)).reshape(-1)
        if len(actions) != len(batch):
            raise ComllmError(f"policy '{policy.name}' returned {len(actions)} actions for {len(batch)} states")
        groups.setdefault(n, _Group(n, oracle)).add(batch, actions.astype(np.int64))

    for item in records:
        s = _state_of(item)
        buf = pending.setdefault(s.n_servers, [])
        buf.append(s)
        if len(buf) >= chunk:
            flush(s.n_servers)
    for n in list(pending):
        flush(n)
    if not groups:
        raise ComllmError("open-loop evaluation got no records")

    total = sum(g.n for g in groups.values())
    sums = {
        k: sum(getattr(g, k) for g in groups.values())
        for k in ("correct", "cost_match", "cost", "oracle_cost", "cost_raw", "oracle_cost_raw", "drops", "oracle_drops", "out_of_range")
    }
    reported = float(policy.stats.get("invalid", 0)) - invalid0
    invalid = max(reported, float(sums["out_of_range"]))
    by = {str(n): groups[n].summary() for n in sorted(groups)}
    jains = [(g.n, by[str(n)]["jain_index"]) for n, g in groups.items() if by[str(n)]["jain_index"] is not None]
    offloaded = sum(int(g.counts[1:].sum()) for g in groups.values())
    return {
        "policy": policy.name,
        "oracle": oracle,
        "n": total,
        "accuracy": sums["correct"] / total,
        "cost_match": sums["cost_match"] / total,
        "perf_ratio": _ratio(sums["oracle_cost"], sums["cost"]),
        "avg_cost": sums["cost"] / total,
        "oracle_avg_cost": sums["oracle_cost"] / total,
        "perf_ratio_raw": _ratio(sums["oracle_cost_raw"], sums["cost_raw"]),
        "avg_cost_raw": sums["cost_raw"] / total,
        "oracle_avg_cost_raw": sums["oracle_cost_raw"] / total,
        "drop_rate": sums["drops"] / total,
        "oracle_drop_rate": sums["oracle_drops"] / total,
        "invalid_rate": invalid / total,
        "jain_index": sum(n * j for n, j in jains) / sum(n for n, _ in jains) if jains else None,
        "offload_share": offloaded / total,
        "policy_stats": dict(policy.stats),
        "by_servers": by,
    }
