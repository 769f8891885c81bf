"""Oracle datasets from closed-loop simulator trajectories.

Each episode runs the simulator from empty queues under behaviour policies
drawn from a mix (greedy oracle, uniform random, epsilon-greedy, least-loaded;
a new draw every ``behaviour_slots`` slots), so the states cover idle, loaded
and congested queues. With ``servers`` given,
each episode draws its server count N and a mix of server types (training sets
with a variable N); otherwise the scenario's servers are used as they are.
In each slot with arrivals, with probability ``keep_prob`` one arriving task is
recorded (so consecutive records are not near-duplicates of one moment): its
state, the label and every action's one-step cost (:mod:`comllm.cost`), the
prompt and answer in a template, and the simulator snapshot at the start of the slot.

The trajectories follow the scenario's decision protocol (``decisions``): under
``sequential`` the behaviour policy decides the slot's tasks in the simulator's
order, the recorded state is the one its task saw (the slot's earlier decisions in
the incoming traffic) and the record keeps those earlier decisions
(``Record.slot_decisions``), so a look-ahead can fix them.

Labels come from ``labels`` (any registered policy, default the greedy oracle): the
record's ``oracle_action`` / ``answer`` is what that policy chooses in the recorded
state. A policy that plans on the simulator (``lacs-planner``) is bound to the
trajectory's simulator at the record's own moment (it does not advance it).

Records are yielded one at a time (never a list of all of them) and depend only
on ``(scenario, n, split, template, seed, servers, config)``.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from comllm.cost import action_costs, oracle_actions, oracle_from_costs
from comllm.data.records import DataError, Record, state_to_dict
from comllm.policies import make_policy
from comllm.policies.base import Policy
from comllm.scenario import SERVER_TYPE_NAMES, SERVER_TYPES, Scenario, make_scenario
from comllm.sim import MECSimulator
from comllm.state import StateBatch
from comllm.text import Template, get_template

SPLITS = ("sft", "grpo", "test")
BEHAVIOURS = ("greedy", "random", "epsilon-greedy", "least-loaded")


@dataclass(frozen=True)
class GenerationConfig:
    """How trajectories are run and sampled.

    ``episode_slots``: slots per episode (each starts from empty queues);
    ``keep_prob``: probability that a slot with arrivals yields a record;
    ``behaviours``: behaviour policies, one drawn uniformly per episode and again every
    ``behaviour_slots`` slots (queues left by one policy meet the next);
    ``epsilon``: range of the random-action probability of epsilon-greedy;
    ``load_scale``: range of a per-episode factor on the arrival probability
    (``(1, 1)``, the default, keeps the scenario's load).
    """

    episode_slots: int = 100
    keep_prob: float = 0.25
    behaviours: tuple[str, ...] = BEHAVIOURS
    behaviour_slots: int = 50
    epsilon: tuple[float, float] = (0.1, 0.5)
    load_scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if self.behaviour_slots < 1:
            raise DataError(f"behaviour_slots = {self.behaviour_slots} must be at least 1")
        if self.episode_slots < 1:
            raise DataError(f"episode_slots = {self.episode_slots} must be at least 1")
        lo, hi = self.load_scale
        if not 0 <= lo <= hi:
            raise DataError(f"load_scale = {self.load_scale} must be a range 0 <= low <= high")
        if not 0 < self.keep_prob <= 1:
            raise DataError(f"keep_prob = {self.keep_prob} must be in (0, 1]")
        for b in self.behaviours:
            if b not in BEHAVIOURS:
                raise DataError(f"unknown behaviour policy '{b}' (known: {', '.join(BEHAVIOURS)})")


class EpsilonGreedy(Policy):
    """The greedy oracle, but a uniformly random action with probability ``epsilon``."""

    name = "epsilon-greedy"

    def __init__(self, epsilon: float, seed: int = 0) -> None:
        self.epsilon = epsilon
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, batch: StateBatch) -> np.ndarray:
        greedy = oracle_actions(batch)
        explore = self.rng.random(len(batch)) < self.epsilon
        return np.where(explore, self.rng.integers(0, batch.n_actions, len(batch)), greedy)


def parse_servers(spec: str | int | tuple[int, ...] | None) -> tuple[int, ...] | None:
    """Server counts to draw from: ``"3-7"`` -> (3..7), ``"6"`` -> (6,), ``"2,4,8"``; ``None`` keeps the scenario's."""
    if spec is None:
        return None
    if isinstance(spec, int):
        values: tuple[int, ...] = (spec,)
    elif isinstance(spec, tuple):
        values = spec
    else:
        s = spec.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", s)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise DataError(f"--servers '{spec}': the range is empty ({lo} > {hi})")
            values = tuple(range(lo, hi + 1))
        elif re.fullmatch(r"\d+(\s*,\s*\d+)*", s):
            values = tuple(int(x) for x in s.split(","))
        else:
            raise DataError(f"--servers '{spec}' is not a count (6), a range (3-7) or a list (2,4,8)")
    if not values or min(values) < 1:
        raise DataError(f"--servers '{spec}': server counts must be at least 1")
    return values


def _behaviour(name: str, rng: np.random.Generator, cfg: GenerationConfig, seed: int) -> Policy:
    if name == "epsilon-greedy":
        policy: Policy = EpsilonGreedy(float(rng.uniform(*cfg.epsilon)), seed)
    else:
        policy = make_policy(name)
    policy.reset(seed)
    return policy


def _episode_scenario(
    base: Scenario, counts: tuple[int, ...] | None, rng: np.random.Generator, cfg: GenerationConfig
) -> Scenario:
    data: dict = {}
    if counts is not None:
        n = int(counts[int(rng.integers(len(counts)))])
        types = [SERVER_TYPE_NAMES[int(i)] for i in rng.integers(0, len(SERVER_TYPE_NAMES), n)]
        data["servers"] = [{"type": t, "ghz": SERVER_TYPES[t]} for t in types]
    if cfg.load_scale != (1.0, 1.0):
        data["arrival_prob"] = min(1.0, base.arrival_prob * float(rng.uniform(*cfg.load_scale)))
    if not data:
        return base
    return make_scenario({**base.model_dump(), **data})


@dataclass
class _Kept:
    """The recorded task of a slot: its one-row state, the labeller's action, the slot's earlier decisions."""

    batch: StateBatch
    label: int | None
    earlier: dict[int, int]


def _decide_slot(
    sim: MECSimulator, policy: Policy, labeller: Policy | None, keep: int
) -> tuple[np.ndarray, _Kept | None]:
    """The behaviour's actions for the slot (by the protocol) and the task at ``keep`` as it saw the slot.

    ``keep`` is a position in the arrivals (simultaneous) or a turn (sequential); -1 records nothing.
    """
    kept: list[_Kept] = []
    turn = [0]

    def act(batch: StateBatch) -> np.ndarray:
        # simultaneous: one call, the kept task at row `keep`; sequential: one call per task
        if keep >= 0 and (not sim.sequential or turn[0] == keep):
            one = batch.subset([0 if sim.sequential else keep])
            label = None if labeller is None else int(np.asarray(labeller.act(one))[0])
            kept.append(_Kept(one, label, dict(sim.decided)))
        turn[0] += 1
        return policy.act(batch)

    actions = sim.decide(act)
    return actions, (kept[0] if kept else None)


def _record(
    made: int, split: str, scenario: Scenario, sim: MECSimulator, t: Template, kept: _Kept,
    behaviour: str, labels: str, reasoning: bool,
) -> Record:  # fmt: skip
    costs = action_costs(kept.batch)[0]
    state = kept.batch.state(0)
    label = int(oracle_from_costs(costs)) if kept.label is None else kept.label
    return Record(
        id=made,
        split=split,
        scenario=scenario.name,
        n_servers=sim.N,
        template=t.name,
        prompt=t.render_prompt(state),
        answer=t.render_answer(label, t.reasoning_trace(state) if reasoning else None),
        oracle_action=label,
        costs=[float(c) for c in costs],
        state=state_to_dict(state),
        device=int(kept.batch.device[0]),
        snapshot=sim.snapshot().to_dict(),
        behaviour=behaviour,
        labels=labels,
        slot_decisions=sorted(kept.earlier.items()) if sim.sequential else None,
        _state_cache=state,
    )


def generate_records(
    scenario: Scenario,
    n: int,
    split: str = "sft",
    template: str | Template = "paper",
    seed: int = 0,
    servers: str | int | tuple[int, ...] | None = None,
    reasoning: bool = False,
    config: GenerationConfig | None = None,
    labels: str = "greedy",
) -> Iterator[Record]:
    """Yield ``n`` labelled records from simulator trajectories (see the module docstring).

    ``split`` names the set and seeds its own random stream (the same ``seed`` gives
    different sft, grpo and test sets); ``reasoning`` puts a cost-model reasoning
    trace before each answer; ``labels`` names the labelling policy.
    """
    if n < 0:
        raise DataError(f"--n = {n} must be at least 0")
    cfg = config or GenerationConfig()
    t = get_template(template)
    counts = parse_servers(servers)
    stream = zlib.crc32(split.encode())
    labeller = None if labels == "greedy" else make_policy(labels, scenario)
    made = 0
    episode = 0
    while made < n:
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, stream, episode])
        sc = _episode_scenario(scenario, counts, rng, cfg)
        sim = MECSimulator(sc, seed=int(rng.integers(2**31)))
        if labeller is not None:
            labeller.reset(episode)
            if labeller.needs_simulator:  # plans on the simulator (lacs-planner)
                labeller.bind(sim)
        for slot in range(cfg.episode_slots):
            if slot % cfg.behaviour_slots == 0:
                behaviour = cfg.behaviours[int(rng.integers(len(cfg.behaviours)))]
                policy = _behaviour(behaviour, rng, cfg, int(rng.integers(2**31)))
            keep = -1
            if len(sim.arrivals) and rng.random() < cfg.keep_prob:
                keep = int(rng.integers(len(sim.arrivals)))
            actions, kept = _decide_slot(sim, policy, labeller, keep)
            if kept is not None:
                yield _record(made, split, scenario, sim, t, kept, behaviour, labels, reasoning)
                made += 1
                if made == n:
                    return
            sim.step(actions)
        episode += 1
