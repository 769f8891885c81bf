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

A ``stateless`` policy (its decisions depend on the batch only: the greedy oracle, a
language model in score mode) runs the seeds in lockstep (:func:`run_episodes`): at every
decision of the protocol, the batches of all seeds go to the policy in one call, which a
batched model turns into one forward pass (under ``sequential``: a batch of one task per
seed instead of one). The results are those of running the seeds one after the other.
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
    return run_episodes(scenario, policy, slots, [seed], warmup, keep_latencies, on_slot, lockstep=False)[0]


def run_episodes(
    scenario: Scenario,
    policy: Policy,
    slots: int,
    seeds: list[int],
    warmup: int = 200,
    keep_latencies: bool = False,
    on_slot: Callable[[], None] | None = None,
    lockstep: bool | None = None,
) -> list[EpisodeMetrics]:
    """Run the closed-loop protocol for every seed; in lockstep when the policy is ``stateless``
    (``lockstep=None``) or when asked (``True``; ``False``: one seed after the other)."""
    together = (policy.stateless and not policy.needs_simulator) if lockstep is None else lockstep
    if not together or len(seeds) == 1:
        return [_run_lockstep(scenario, policy, slots, [s], warmup, keep_latencies, on_slot)[0] for s in seeds]
    return _run_lockstep(scenario, policy, slots, seeds, warmup, keep_latencies, on_slot)


def _run_lockstep(
    scenario: Scenario,
    policy: Policy,
    slots: int,
    seeds: list[int],
    warmup: int,
    keep_latencies: bool,
    on_slot: Callable[[], None] | None,
) -> list[EpisodeMetrics]:
    sims = [MECSimulator(scenario, seed=s) for s in seeds]
    policy.reset(seeds[0])
    if policy.needs_simulator:  # policies that plan on the simulator itself (lacs-planner) get it here
        if len(sims) > 1:
            raise ValueError(f"policy '{policy.name}' plans on one live simulator: it cannot run seeds in lockstep")
        policy.bind(sims[0])

    def advance() -> None:
        if len(sims) == 1:
            sims[0].step(sims[0].decide(policy.act))  # the scenario's decision protocol
        else:
            for sim, actions in zip(sims, decide_together(sims, policy.act)):
                sim.step(actions)
        if on_slot is not None:
            for _ in sims:
                on_slot()

    for _ in range(warmup):
        advance()
    first_task = [sim.log.n for sim in sims]
    served0 = [sim.served.copy() for sim in sims]
    for _ in range(slots):
        advance()
    last_task = [sim.log.n for sim in sims]
    served = [sim.served - s0 for sim, s0 in zip(sims, served0)]
    for _ in range(scenario.deadline):
        advance()
    return [
        _measure(sim, scenario, seed, slice(a, b), srv, slots, keep_latencies)
        for sim, seed, a, b, srv in zip(sims, seeds, first_task, last_task, served)
    ]


def decide_together(sims: list[MECSimulator], act: Callable[[Any], Any]) -> list[np.ndarray]:
    """Every simulator's slot decided by its protocol, one ``act`` call per turn for all of them.

    Each simulator's :meth:`~comllm.sim.MECSimulator.decisions` generator yields the batch it
    wants decided; the pending batches are concatenated, decided at once and split back.
    """
    from comllm.state import StateBatch

    out: list[np.ndarray | None] = [None] * len(sims)
    gens = [sim.decisions() for sim in sims]
    pending: dict[int, Any] = {}
    for i, g in enumerate(gens):
        try:
            pending[i] = next(g)
        except StopIteration as done:
            out[i] = done.value
    while pending:
        order = list(pending)
        batches = [pending[i] for i in order]
        actions = np.asarray(act(StateBatch.concat(batches)), dtype=np.int64).reshape(-1)
        cuts = np.cumsum([len(b) for b in batches])[:-1]
        pending = {}
        for i, a in zip(order, np.split(actions, cuts)):
            try:
                pending[i] = gens[i].send(a)
            except StopIteration as done:
                out[i] = done.value
    return out  # type: ignore[return-value]


def _measure(
    sim: MECSimulator, scenario: Scenario, seed: int, sl: slice, served: np.ndarray, slots: int, keep_latencies: bool
) -> EpisodeMetrics:
    log = sim.log
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
    episodes = run_episodes(scenario, policy, slots, seed_list, warmup, keep_latencies, on_slot)
    return summarize(episodes, policy, scenario), episodes
