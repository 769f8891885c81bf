"""Closed-loop evaluation: a policy runs the simulator; tasks are scored by what really happened.

Protocol per seed: ``warmup`` slots (not scored) fill the queues, then the tasks
arriving during the next ``slots`` slots are scored; the run continues until
every scored task has ended (at most ``deadline`` more slots), so no scored
task is censored. Every seed sees the same arrivals and channel under every
policy and in both decision protocols (the random draws do not depend on the
actions). The slot's tasks are decided by the scenario's protocol
(:meth:`comllm.sim.MECSimulator.decide`: one batch under ``simultaneous``, one
task per call in a seeded order under ``sequential``). A policy with
``needs_simulator`` (the LACS planner) is handed each episode's live simulator by ``bind(sim)``
before the episode starts; it must not advance it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from comllm.evaluate.metrics import aggregate_seeds, jain_index
from comllm.policies.base import Policy
from comllm.scenario import Scenario
from comllm.sim import MECSimulator
from comllm.sim import kernels as K


@dataclass
class EpisodeMetrics:
    """Metrics of one seed. Latencies in slots (a drop counts the deadline)."""

    seed: int
    n_tasks: int
    avg_latency: float
    avg_latency_completed: float
    drop_rate: float
    latency_p50: float
    latency_p95: float
    latency_p99: float
    offload_share: float  # fraction of tasks offloaded
    per_server_share: list[float]  # fraction of offloaded tasks per server
    jain_index: float  # on offload counts (the reference's definition)
    jain_utilization: float  # on server utilisation (computed Mbit / capacity)
    utilization: list[float]
    drops_by_stage: dict[str, int] = field(default_factory=dict)
    latencies: np.ndarray | None = None  # every scored task's latency (for CDFs)


def run_episode(
    scenario: Scenario,
    policy: Policy,
    slots: int,
    seed: int,
    warmup: int = 200,
    keep_latencies: bool = False,
    on_slot: Callable[[], None] | None = None,
) -> EpisodeMetrics:
    """Run one seed of the closed-loop protocol and measure it."""
    sim = MECSimulator(scenario, seed=seed)
    policy.reset(seed)
    if policy.needs_simulator:  # policies that plan on the simulator itself (lacs-planner) get it here
        policy.bind(sim)
    def advance() -> None:
        sim.step(sim.decide(policy.act))  # the scenario's decision protocol
        if on_slot is not None:
            on_slot()

    for _ in range(warmup):
        advance()
    first_task = sim.log.n
    served0 = sim.served.copy()
    for _ in range(slots):
        advance()
    last_task = sim.log.n
    served = sim.served - served0
    for _ in range(scenario.deadline):
        advance()
    log = sim.log
    sl = slice(first_task, last_task)
    code = log.code[sl]
    lat = log.latency[sl]
    act = log.action[sl]
    n = len(code)
    assert (code > 0).all(), "a scored task did not end"
    done = code == K.OUT_DONE
    counts = np.bincount(act, minlength=scenario.n_servers + 1)[1:].astype(np.float64)
    offloaded = counts.sum()
    util = served / (np.asarray(scenario.server_rates()) * slots)
    drops = {K.OUTCOME_NAMES[c]: int((code == c).sum()) for c in range(2, 8) if (code == c).any()}
    pct = np.percentile(lat, [50, 95, 99]) if n else [np.nan] * 3
    return EpisodeMetrics(
        seed=seed,
        n_tasks=n,
        avg_latency=float(lat.mean()) if n else float("nan"),
        avg_latency_completed=float(lat[done].mean()) if done.any() else float("nan"),
        drop_rate=float((~done).mean()) if n else float("nan"),
        latency_p50=float(pct[0]),
        latency_p95=float(pct[1]),
        latency_p99=float(pct[2]),
        offload_share=float(offloaded / n) if n else float("nan"),
        per_server_share=(counts / offloaded).tolist() if offloaded else [0.0] * scenario.n_servers,
        jain_index=jain_index(counts),
        jain_utilization=jain_index(util),
        utilization=util.tolist(),
        drops_by_stage=drops,
        latencies=lat.copy() if keep_latencies else None,
    )


def summarize(episodes: list[EpisodeMetrics], policy: Policy, scenario: Scenario) -> dict[str, Any]:
    """The result row of :func:`comllm.evaluate.metrics.aggregate_seeds` (mean and 95 % CI over seeds).

    The policy's counters are those it holds now, after the last episode.
    """
    return aggregate_seeds(episodes, policy=policy.name, scenario=scenario.name, policy_stats=[policy.stats])


def evaluate_closed_loop(
    scenario: Scenario,
    policy: Policy,
    slots: int = 2000,
    seeds: int | list[int] = 3,
    warmup: int = 200,
    keep_latencies: bool = False,
    on_slot: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], list[EpisodeMetrics]]:
    """Evaluate ``policy`` on ``scenario`` over seeds; returns the summary and the episodes."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    episodes = [
        run_episode(scenario, policy, slots, s, warmup=warmup, keep_latencies=keep_latencies, on_slot=on_slot)
        for s in seed_list
    ]
    return summarize(episodes, policy, scenario), episodes
