"""All-action look-ahead policy improvement: GRPO whose group is every action (the COMLLM stage).

A language model in score mode gives ``π(a|s)`` for every valid answer of a state in one
pass (the softmax, over the action set, of each answer's log-likelihood,
:func:`comllm.lm.scoring.candidate_logprobs`), and LACS scores every action of a state in
one batched rollout call (:func:`comllm.lacs.lookahead.lacs_evaluate_batch`). So the
expected look-ahead advantage over the whole action set is exact: no sampling noise, no
group in which every completion is the same answer. One iteration, read top to bottom:

1. **collect**: run the current policy (score mode, the most likely answer) in closed loop
   on ``scenario`` (its decision protocol included) for ``collect_slots`` slots after
   ``warmup``, recording ``states_per_slot`` random decisions per slot: the slot-start
   snapshot, the deciding device, its state and the slot's other decisions;
2. **score**: the LACS score of every action of each recorded state (``horizon`` slots,
   ``rollouts`` rollouts, ``lam``). The slot's other tasks follow ``others``: ``policy``
   fixes what the trained policy did with them (``simultaneous``: all of the slot's other
   tasks; ``sequential``: those decided before, as the planner does) and lets the greedy
   oracle decide the rest; ``greedy`` lets the greedy oracle decide them all, as the
   dataset rewards do. Later slots are decided by the greedy oracle. The states are scored
   in parallel (:mod:`comllm.lacs.parallel`): in contiguous chunks by ``workers`` local
   processes (0: one per CPU core, 1: in this process) or as Ray tasks on the cluster at
   ``ray``; a state's rollout draws depend on the state and the iteration's seed only, so
   the scores are the same, bit for bit, however they are split;
3. **advantage**, group-relative over the action set: ``A(a) = -(score(a) - mean) / (std + 1e-6)``
   (lower score is better, so the best action has the largest advantage);
4. **update**, ``epochs`` passes in minibatches of ``batch_size`` states with Adam:
   ``loss = -Σ_a π(a|s)·A(a) + β·KL(π(·|s) ‖ π_ref(·|s))``, ``π_ref`` the model the run started
   from (frozen); or, with ``objective="soft-best"``, the cross-entropy to the look-ahead's
   ranking ``q = softmax(-(score - min) / tau)`` plus the same KL (on-policy imitation of LACS;
   the log's ``expected_advantage`` column then holds ``-CE``); or, with ``objective="regress"``
   (a model with a cost head: ``comllm sft --cost-head``), the cost head read at each action
   line's end regresses ``log1p(min(score, 100))`` of every action (mean squared error) plus
   ``β`` × the squared distance to the reference's estimates, and the policy decides by the
   least estimate (``llm:...,mode=cost``): fitted look-ahead values on the policy's own
   states (the log's ``expected_advantage`` column then holds ``-MSE`` and ``kl`` the distance).
   With ``anchor="start+lookahead"`` the anchor is the reference's estimate plus each action's
   look-ahead increment ``log1p(score) - log1p(current)`` (``current`` the task's own latency,
   :mod:`comllm.lacs.lookahead`): β holds only the estimate of the task's own latency near the
   start's, and the price of the later tasks, which the start does not estimate, is fitted in
   full (the loss's minimiser is that of the same stage without the look-ahead, ``lam = 0``,
   plus the whole increment; with the plain anchor it is plus ``1 / (1 + β)`` of it);
5. **evaluate**: closed-loop latency, drops and Jain of the updated model on
   ``eval_slots`` × ``eval_seeds`` (seeds from 1000, never those of collection), logged.

Each iteration ends with a checkpoint (the model folder and ``state.safetensors``: step,
optimizer, random state; README "What is safe"); ``resume`` continues from the last
complete one. Logs: ``train_log.csv`` (one row per iteration) and TensorBoard in ``tb/``.
"""

from __future__ import annotations

import copy
import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from comllm.errors import ComllmError
from comllm.lacs.lookahead import LACS_DEFAULTS, LacsSettings
from comllm.lacs.parallel import connect_ray, score_states
from comllm.limits import MAX_TEMPERATURE, MAX_WORKERS
from comllm.scenario import Scenario, load_scenario, split_override_set
from comllm.sft_config import LINE_COMPARE, PERTURB_KNOWN, is_perturb_family
from comllm.sim import MECSimulator, Snapshot
from comllm.sim.batch import RULES as ROLLOUT_RULES
from comllm.state import StateBatch

OTHERS = ("policy", "greedy")
OBJECTIVES = ("advantage", "soft-best", "regress")
VALUE_TARGETS = ("absolute", "relative")
ANCHORS = ("start", "start+lookahead")
LOG_FIELDS = (
    "iteration", "states", "loss", "expected_advantage", "kl", "agree_best", "entropy",
    "eval_latency", "eval_drop_rate", "eval_jain", "collect_s", "score_s", "update_s", "eval_s", "mix",
)  # fmt: skip
_ARRAYS = ("arr", "size", "rem", "act", "stage", "chan", "chan_im", "rate", "phase", "new_mask", "new_size")


def opt(default: Any, help: str, flag: str = "") -> Any:
    """A config field with its command-line help and, if not ``--field-name``, its option name
    (read by :func:`comllm.cli.from_config.config_command`)."""
    return field(default=default, metadata={"help": help, "flag": flag})


class ImproveError(ComllmError, ValueError):
    """A bad setting of the all-action LACS stage (names the option and the value)."""


@dataclass(frozen=True)
class ImproveConfig:
    """Settings of :func:`improve` (README, "The all-action stage"); units: slots for times.

    ``model``: the starting model (a folder or ``default``); ``out``: the run folder.
    ``workers`` / ``ray``: where the scoring step runs (:mod:`comllm.lacs.parallel`): chunks of
    the states in ``workers`` local processes (0: one per CPU core; 1: in this process), or
    Ray tasks on the cluster at ``ray`` (``workers`` then sizes the chunks as the worker count
    does, 0: the cluster's CPUs); the scores do not depend on it.
    """

    model: str = opt("default", "starting model: a folder written by `comllm sft`, or 'default'")
    out: str = opt("runs/improve", "run folder: checkpoints, logs, reference and final model")
    scenario: str = opt("paper-6", "scenario preset or YAML the policy is trained on")
    overrides: tuple[str, ...] = opt((), "scenario override key=value, e.g. decisions=sequential", "--set")
    mix: tuple[str, ...] = opt(
        (), "override sets taken in turn, one per iteration, ';'-separated: e.g. "
        "--mix 'arrival_prob=0.3' --mix 'arrival_prob=0.5;decisions=sequential'",
    )
    iterations: int = opt(10, "collect -> score -> update -> evaluate iterations")
    warmup: int = opt(50, "slots run before recording (collection) or scoring (evaluation)")
    collect_slots: int = opt(100, "slots of closed loop recorded per iteration")
    states_per_slot: int = opt(4, "decisions recorded per slot (at most its arrivals)")
    others: str = opt("policy", "the slot's other tasks in the rollouts: policy (as the policy decided) | greedy")
    horizon: int = opt(LACS_DEFAULTS.horizon, "LACS: slots after the decision slot whose tasks are scored")
    other_policy: str = opt(
        LACS_DEFAULTS.other_policy,
        "LACS: how the rollouts decide the later slots' tasks: greedy | greedy-incoming (greedy:incoming, "
        "a slot's tasks in turn) | greedy-sharing (greedy:sharing, in turn) | local | random",
    )
    rollouts: int = opt(LACS_DEFAULTS.rollouts, "LACS: rollouts per action")
    lam: float = opt(LACS_DEFAULTS.lam, "LACS: weight of the later tasks' mean latency")
    drop_cost: str = opt("deadline", "LACS: a dropped task costs the deadline | the scenario's drop penalty")
    epochs: int = opt(2, "passes over an iteration's states")
    batch_size: int = opt(32, "states per optimizer step")
    lr: float = opt(5e-5, "Adam learning rate")
    beta: float = opt(0.05, "weight of KL(pi || pi_ref), pi_ref the starting model")
    objective: str = opt(
        "advantage", "advantage: -sum_a pi(a|s) A(a) | soft-best: cross-entropy to softmax(-score / tau) "
        "(the look-ahead's ranking of every action as the target) | regress: the cost head fits every "
        "action's log1p LACS score and the policy decides by the least (llm mode=cost)",
    )
    tau: float = opt(0.25, "soft-best: temperature of the target, slots of LACS score")
    anchor: str = opt(
        "start", "regress: what beta holds the cost head near: start (the starting model's estimates) | "
        "start+lookahead (those plus each action's look-ahead increment log1p(score) - log1p(own latency): only "
        "the own-latency estimate is held, the later tasks' price is fitted in full)",
    )
    value_target: str = opt(
        "absolute", "regress: absolute (every action's log1p LACS score) | relative (the scores' differences "
        "between a state's actions, their mean over the actions kept at the reference's mean estimate)",
    )
    renumber: float = opt(
        0.0, "regress: probability that a training prompt names its servers by other increasing ids from "
        "1..--renumber-max (as comllm sft --renumber), so that values fitted on N servers keep every id's token "
        "in use (zero-shot server counts)",
    )
    renumber_max: int = opt(24, "with --renumber: the largest id drawn")
    renumber_order: str = opt("increasing", "with --renumber: the drawn ids in the servers' order (increasing) | in random order (any)")
    perturb: tuple[str, ...] = opt(
        (), "regress: perturb training prompts with this family of comllm.text.perturb (repeatable; one drawn "
        "per prompt, training seeds only, as comllm sft --perturb)", "--perturb",
    )
    perturb_prob: float = opt(0.3, "with --perturb: probability that a training prompt is perturbed")
    cost_temperature: float = opt(
        0.0, "with --objective regress: the policy draws its action from softmax(-cost / T) (cost head units) in "
        "collection and evaluation, and its checkpoints say so (llm option cost_temperature); 0: the least",
    )
    line_compare: str | None = opt(
        None, "the start's line rule replaced (an embedded model under --line-positions lines; as comllm sft "
        "--line-compare): none makes each action's value read the task and its own line only, the same on any "
        "server count | earlier | all (default: the start's own)",
    )
    eval_slots: int = opt(200, "scored slots of the closed-loop evaluation after each iteration (0: none)")
    eval_seeds: int = opt(1, "seeds of that evaluation (1000, 1001, ...)")
    seed: int = opt(0, "random seed of collection, rollouts and minibatches")
    threads: int = opt(0, "torch threads (0: torch's default)")
    workers: int = opt(0, "processes scoring the states: 0 one per CPU core, 1 this process (with --ray: Ray tasks)")
    ray: str | None = opt(None, "score the states as Ray tasks on the cluster at this address (HOST:PORT, auto)")
    resume: bool = opt(False, "continue from the last complete checkpoint in --out")

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ImproveError(f"--{name.replace('_', '-')} = {getattr(self, name)!r}: {what}")

        for name in ("iterations", "collect_slots", "states_per_slot", "rollouts", "epochs", "batch_size"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("warmup", "horizon", "eval_slots", "eval_seeds", "seed", "threads", "workers"):
            need(getattr(self, name) >= 0, name, "must be >= 0")
        need(self.workers <= MAX_WORKERS, "workers", f"must be <= {MAX_WORKERS}")
        need(self.ray is None or bool(self.ray.strip()), "ray", "must be an address (HOST:PORT, auto)")
        need(self.others in OTHERS, "others", f"must be one of {', '.join(OTHERS)}")
        need(self.other_policy in ROLLOUT_RULES, "other_policy", f"must be one of {', '.join(ROLLOUT_RULES)}")
        need(self.objective in OBJECTIVES, "objective", f"must be one of {', '.join(OBJECTIVES)}")
        need(np.isfinite(self.tau) and self.tau > 0, "tau", "must be a finite number > 0")
        need(np.isfinite(self.lr) and self.lr > 0, "lr", "must be a finite number > 0")
        need(np.isfinite(self.beta) and self.beta >= 0, "beta", "must be a finite number >= 0")
        need(np.isfinite(self.lam) and self.lam >= 0, "lam", "must be a finite number >= 0")
        need(self.drop_cost == "deadline" or self.drop_cost == "penalty", "drop_cost", "must be deadline or penalty")
        need(self.value_target in VALUE_TARGETS, "value_target", f"must be one of {', '.join(VALUE_TARGETS)}")
        need(self.anchor in ANCHORS, "anchor", f"must be one of {', '.join(ANCHORS)}")
        need(self.anchor == "start" or self.objective == "regress", "anchor", "is for --objective regress")
        need(0 <= self.renumber <= 1, "renumber", "must be a probability in [0, 1]")
        need(self.renumber_order in ("increasing", "any"), "renumber_order", "must be increasing or any")
        need(1 <= self.renumber_max <= 128, "renumber_max", "must be in 1..128")
        need(0 <= self.perturb_prob <= 1, "perturb_prob", "must be a probability in [0, 1]")
        need(0 <= self.cost_temperature <= MAX_TEMPERATURE, "cost_temperature", f"must be in [0, {MAX_TEMPERATURE:g}]")
        need(self.cost_temperature == 0 or self.objective == "regress", "cost_temperature",
             "is for --objective regress (a policy that decides by its cost head)")
        need(self.line_compare is None or self.line_compare in LINE_COMPARE, "line_compare",
             f"must be one of {', '.join(LINE_COMPARE)}")
        for family in self.perturb:
            if not is_perturb_family(family):
                raise ImproveError(f"--perturb = {family!r}: unknown family ({PERTURB_KNOWN})")
        need(not self.augmented or self.objective == "regress", "objective",
             "--renumber and --perturb are for --objective regress (its targets follow the action, not the answer's id)")

    @property
    def augmented(self) -> bool:
        """Whether some training prompts are renumbered or perturbed (:meth:`_Scorer.encode`)."""
        return self.renumber > 0 or (bool(self.perturb) and self.perturb_prob > 0)

    def lacs(self, iteration: int) -> LacsSettings:
        drop = "deadline" if self.drop_cost == "deadline" else None
        return LacsSettings(self.horizon, self.rollouts, self.lam, self.other_policy, drop, self.seed * 1000 + iteration)


@dataclass
class Collected:
    """The recorded decisions of one iteration (one server count: one scenario)."""

    snapshots: list[Snapshot] = field(default_factory=list)
    devices: list[int] = field(default_factory=list)
    fixed: list[dict[int, int]] = field(default_factory=list)  # other tasks' actions fixed in the rollouts
    states: list[Any] = field(default_factory=list)  # TaskState

    def __len__(self) -> int:
        return len(self.devices)


# ---------------------------------------------------------------- 1. collect
def collect(policy: Any, scenario: Scenario, cfg: ImproveConfig, iteration: int) -> Collected:
    """Run ``policy`` in closed loop and record ``states_per_slot`` decisions per slot (see the module docstring)."""
    seed = cfg.seed * 100_003 + iteration
    sim = MECSimulator(scenario, seed=seed)
    rng = np.random.default_rng([cfg.seed, iteration, 7])
    policy.reset(seed)
    out = Collected()
    for slot in range(cfg.warmup + cfg.collect_slots):
        record = slot >= cfg.warmup and len(sim.arrivals) > 0
        snap = Snapshot(scenario, sim.t, {k: getattr(sim, k).copy() for k in _ARRAYS}, {}, None) if record else None
        seen: list[tuple[StateBatch, dict[int, int]]] = []

        def act(batch: StateBatch) -> np.ndarray:
            if record:
                seen.append((batch, dict(sim.decided)))
            return policy.act(batch)

        actions = sim.decide(act)
        if record:
            n = len(sim.arrivals)
            picks = rng.choice(n, size=min(cfg.states_per_slot, n), replace=False)
            by_device = dict(zip(sim.arrivals.tolist(), actions.tolist()))
            order = sim.decision_order()
            for p in picks.tolist():
                dev = int(sim.arrivals[p])
                if sim.sequential:  # the batch of its turn, the decisions before it
                    turn = int(np.flatnonzero(order == p)[0])
                    batch, earlier = seen[turn]
                    state, fixed = batch.state(0), earlier
                else:
                    batch, _ = seen[0]
                    state = batch.state(p)
                    fixed = {m: a for m, a in by_device.items() if m != dev}
                out.snapshots.append(snap)
                out.devices.append(dev)
                out.fixed.append(fixed if cfg.others == "policy" else {})
                out.states.append(state)
        sim.step(actions)
    return out


# ------------------------------------------------------------------ 2. score
def score(data: Collected, cfg: ImproveConfig, iteration: int, parts: bool = False) -> np.ndarray:
    """LACS score of every action of every recorded state, ``(S, N + 1)``, slots (lower is better);
    in parallel over ``cfg.workers`` processes or Ray tasks on ``cfg.ray``, the same scores either way.
    With ``parts``: ``(S, 2, N + 1)``, the scores and their own-latency part
    (:func:`comllm.lacs.parallel.score_chunk`)."""
    return score_states(data.snapshots, data.devices, data.fixed, cfg.lacs(iteration), cfg.workers, cfg.ray, parts)


def lookahead_increment(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scores ``(S, A)`` of :func:`score`'s ``parts`` and each action's look-ahead increment on the
    cost head's scale, ``value_targets(score) - value_targets(current)`` (``anchor="start+lookahead"``)."""
    scores, current = parts[:, 0], parts[:, 1]
    return scores, value_targets(scores) - value_targets(current)


# -------------------------------------------------------------- 3. advantage
def soft_targets(scores: np.ndarray, tau: float) -> np.ndarray:
    """``softmax(-(score - min) / tau)`` over each state's actions: the look-ahead's ranking as a
    distribution (``tau`` in slots; small: the LACS best action, large: uniform)."""
    z = -(scores - scores.min(axis=1, keepdims=True)) / tau
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def advantages(scores: np.ndarray) -> np.ndarray:
    """Group-relative advantage over each state's action set: ``-(s - mean) / (std + 1e-6)``."""
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return -(scores - mean) / (std + 1e-6)


# ------------------------------------------------------------------- 4. loss
def all_action_loss(
    logits: torch.Tensor, adv: torch.Tensor, ref_logp: torch.Tensor, beta: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """``-Σ_a π(a|s)·A(a) + β·KL(π ‖ π_ref)``, mean over states.

    ``logits`` (B, A): the answers' log-likelihoods (any shift per row); ``adv`` (B, A);
    ``ref_logp`` (B, A): the reference policy's log-probabilities over the action set.
    """
    logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp()
    expected = (p * adv).sum(dim=-1)
    kl = (p * (logp - ref_logp)).sum(dim=-1)
    loss = (-expected + beta * kl).mean()
    entropy = -(p * logp).sum(dim=-1).mean()
    with torch.no_grad():
        metrics = {"expected_advantage": float(expected.mean()), "kl": float(kl.mean()), "entropy": float(entropy)}
    return loss, metrics


def soft_best_loss(
    logits: torch.Tensor, target: torch.Tensor, ref_logp: torch.Tensor, beta: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """``CE(q, π) + β·KL(π ‖ π_ref)``, mean over states, ``q`` = :func:`soft_targets` (B, A).

    On-policy imitation of the look-ahead (DAgger with LACS as the expert, every action
    ranked): the states are the trained policy's own, the target their LACS ranking."""
    logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp()
    ce = -(target * logp).sum(dim=-1)
    kl = (p * (logp - ref_logp)).sum(dim=-1)
    loss = (ce + beta * kl).mean()
    with torch.no_grad():
        metrics = {"expected_advantage": float(-ce.mean()), "kl": float(kl.mean()),
                   "entropy": float(-(p * logp).sum(dim=-1).mean())}  # fmt: skip
    return loss, metrics


def regress_loss(
    costs: torch.Tensor, target: torch.Tensor, ref_costs: torch.Tensor, beta: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """``mean (c - y)² + β·mean (c - c_ref)²`` over states and actions (``objective="regress"``).

    ``costs`` (B, A): the cost head's estimates; ``target`` (B, A): :func:`value_targets` of the
    LACS scores; ``ref_costs``: the reference model's estimates (the anchor, as the KL is)."""
    mse = (costs - target).pow(2).mean(dim=-1)
    dist = (costs - ref_costs).pow(2).mean(dim=-1)
    loss = (mse + beta * dist).mean()
    with torch.no_grad():
        metrics = {"expected_advantage": float(-mse.mean()), "kl": float(dist.mean()), "entropy": float("nan")}
    return loss, metrics


def value_targets(scores: np.ndarray) -> np.ndarray:
    """``log1p(min(score, 100))``: the cost head's scale (the SFT cost head's, :func:`comllm.lm.sft.cost_head_loss`)."""
    return np.log1p(np.minimum(scores, 100.0))


def relative_targets(target: torch.Tensor, ref_costs: torch.Tensor) -> torch.Tensor:
    """``value_target="relative"``: each state's targets (B, A) shifted so that their mean over the
    actions is the reference's mean estimate; only the differences between actions are fitted (the
    decision), the level of the estimates stays the starting model's."""
    return target - target.mean(dim=-1, keepdim=True) + ref_costs.mean(dim=-1, keepdim=True)


# ----------------------------------------------------------------- the model
@dataclass
class _Encoded:
    """Token ids of a list of states' prompts (one server count ``n``); under ``regress`` also each
    prompt's action line ends (positions, in action order 0..n, wherever its lines are)."""

    n: int
    prompts: list[list[int]]
    ends: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.prompts)


class _Scorer:
    """Log-likelihoods of every answer (or, ``costs``, the cost head's estimates) of a batch of states."""

    def __init__(self, lm: Any, objective: str = "advantage", cost_temperature: float = 0.0) -> None:
        from comllm.lm.policy import DecodeOptions, LMPolicy

        self.lm = lm
        self.costs = objective == "regress"
        # the policy being trained; also what renders prompts, answers and line ends
        options = DecodeOptions(mode="cost", cost_temperature=cost_temperature) if self.costs else DecodeOptions()
        self.reader = LMPolicy(lm, options)

    def answer_ids(self, n: int) -> list[list[int]]:
        return self.reader.answer_ids(n)

    def encode(self, states: list[Any], cfg: ImproveConfig | None = None, seed: int = 0) -> _Encoded:
        """The prompts the model reads: canonical, or with ``cfg.augmented`` the training prompts of
        ``comllm sft`` (:func:`comllm.lm.sft.encode_examples`: ``cfg.renumber`` of them renaming
        the servers, ``cfg.perturb_prob`` perturbed, drawn from ``seed``). A perturbed prompt whose
        lines are not one per action keeps its canonical form."""
        n = states[0].n_servers if states else 0
        if not (self.costs and cfg is not None and cfg.augmented and states):
            prompts = self.lm.encode_prompts([self.lm.prompt_text(s) for s in states])
            return _Encoded(n, prompts, [self.reader.action_ends(p, n) for p in prompts] if self.costs else None)
        from comllm.lm.sft import encode_examples

        ex = encode_examples(self.lm, states, np.zeros(len(states), dtype=np.int64),
                             [np.zeros(n + 1)] * len(states), with_line_ends=True, perturb=cfg.perturb,
                             perturb_prob=cfg.perturb_prob, perturb_seed=seed, renumber=cfg.renumber,
                             renumber_max=cfg.renumber_max, renumber_seed=seed,
                             renumber_increasing=cfg.renumber_order == "increasing")  # fmt: skip
        prompts = [p.tolist() for p in ex.prompt]
        ends = [np.asarray(e, dtype=np.int64) for e in ex.line_ends]
        for k in (k for k, e in enumerate(ends) if len(e) != n + 1):  # lines not one per action: canonical
            prompts[k] = self.lm.encode_prompts([self.lm.prompt_text(states[k])])[0]
            ends[k] = self.reader.action_ends(prompts[k], n)
        return _Encoded(n, prompts, ends)

    def logits(self, model: torch.nn.Module, enc: _Encoded, idx: list[int] | None = None) -> torch.Tensor:
        """Answer log-likelihoods (B, A) of the prompts ``idx`` of ``enc`` (all: ``None``); under
        ``regress`` the cost head's estimates instead."""
        from comllm.lm.scoring import candidate_logprobs, line_costs

        idx = list(range(len(enc))) if idx is None else idx
        prompts = [enc.prompts[i] for i in idx]
        pad = self.lm.tokenizer.pad_token_id
        if enc.ends is not None:
            return line_costs(model, prompts, torch.from_numpy(np.stack([enc.ends[i] for i in idx])), pad)
        return candidate_logprobs(model, prompts, self.answer_ids(enc.n), pad)

    def best(self, model: torch.nn.Module, states: list[Any]) -> np.ndarray:
        """The action the model takes in each state (the most likely answer, or the least estimate)."""
        z = self.logits(model, self.encode(states))
        return (z.argmin(dim=-1) if self.costs else z.argmax(dim=-1)).numpy()


def update(
    model: torch.nn.Module, ref: torch.nn.Module, scorer: _Scorer, opt: torch.optim.Optimizer,
    data: Collected, adv: np.ndarray, cfg: ImproveConfig, rng: np.random.Generator, seed: int = 0,
    anchor_shift: np.ndarray | None = None,
) -> dict[str, float]:  # fmt: skip
    """``epochs`` passes of the all-action loss over the iteration's states; mean metrics of the last pass.

    The prompts are encoded once (:meth:`_Scorer.encode`, augmented draws from ``seed``); the
    reference is read on the same prompts. ``anchor_shift`` ``(S, A)``, under ``regress``: added to
    the reference's estimates to make the anchor (:func:`lookahead_increment`)."""
    enc = scorer.encode(data.states, cfg, seed)
    with torch.no_grad():
        ref.eval()
        anchor = (lambda z: z) if cfg.objective == "regress" else (lambda z: torch.log_softmax(z, dim=-1))
        ref_logp = torch.cat([
            anchor(scorer.logits(ref, enc, list(range(i, min(i + cfg.batch_size, len(data))))).float())
            for i in range(0, len(data), cfg.batch_size)
        ])  # fmt: skip
    adv_t = torch.as_tensor(adv, dtype=torch.float32)
    if cfg.objective == "regress" and cfg.value_target == "relative":
        adv_t = relative_targets(adv_t, ref_logp)
    if anchor_shift is not None:
        ref_logp = ref_logp + torch.as_tensor(anchor_shift, dtype=torch.float32)
    model.train()
    sums: dict[str, float] = {}
    for epoch in range(cfg.epochs):
        sums = {"loss": 0.0, "expected_advantage": 0.0, "kl": 0.0, "entropy": 0.0}
        order = rng.permutation(len(data))
        for lo in range(0, len(order), cfg.batch_size):
            idx = order[lo : lo + cfg.batch_size].tolist()
            logits = scorer.logits(model, enc, idx).float()
            if cfg.objective == "regress":
                loss, m = regress_loss(logits, adv_t[idx], ref_logp[idx], cfg.beta)
            elif cfg.objective == "soft-best":
                loss, m = soft_best_loss(logits, adv_t[idx], ref_logp[idx], cfg.beta)
            else:
                loss, m = all_action_loss(logits, adv_t[idx], ref_logp[idx], cfg.beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            w = len(idx) / len(data)
            sums["loss"] += float(loss.detach()) * w
            for k, v in m.items():
                sums[k] += v * w
    model.eval()
    return sums


# --------------------------------------------------------------- 5. evaluate
def evaluate(policy: Any, scenario: Scenario, cfg: ImproveConfig) -> dict[str, float]:
    """Closed-loop latency (slots), drop rate and Jain of offloads on ``eval_seeds`` seeds from 1000."""
    from comllm.evaluate.closed_loop import evaluate_closed_loop

    if cfg.eval_seeds == 0 or cfg.eval_slots == 0:
        return {"eval_latency": float("nan"), "eval_drop_rate": float("nan"), "eval_jain": float("nan")}
    summary, _ = evaluate_closed_loop(
        scenario, policy, slots=cfg.eval_slots, seeds=[1000 + k for k in range(cfg.eval_seeds)], warmup=cfg.warmup
    )
    return {"eval_latency": summary["avg_latency"], "eval_drop_rate": summary["drop_rate"],
            "eval_jain": summary["jain_index"] if summary["jain_index"] is not None else float("nan")}  # fmt: skip


# ------------------------------------------------------------------ the loop
def improve(cfg: ImproveConfig, log: Callable[[str], None] = print, progress: Any = None) -> Path:
    """Run the stage (see the module docstring); returns the folder of the final model (``OUT/final``)."""
    from comllm.checkpointing import atomic_write_json, load_state, save_state, staged_dir, truncate_csv
    from comllm.lm.loading import load_lm
    from comllm.locking import lock_folder

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.ray is not None:  # a bad address fails now, in one line, not after the first collection
        connect_ray(cfg.ray)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    scenarios = [load_scenario(cfg.scenario, list(cfg.overrides) + split_override_set(m))
                 for m in (cfg.mix or ("",))]  # fmt: skip
    with lock_folder(out, "comllm improve"):
        start, state = 0, None
        last = _last_checkpoint(out, log)
        if last is not None and not cfg.resume:
            raise ImproveError(f"--out '{out}' already holds a run (iteration {last[0]}): pass --resume or another --out")
        lm = load_lm(str(last[1]) if last is not None else cfg.model, trainable=True)
        if last is None and cfg.line_compare is not None:
            _set_line_compare(lm, cfg)
        ref = copy.deepcopy(lm.model) if last is None else load_lm(str(out / "reference")).model
        for p in ref.parameters():
            p.requires_grad_(False)
        if last is None:
            lm.save(out / "reference")  # the KL anchor, kept for resumes
        opt = torch.optim.Adam([p for p in lm.model.parameters() if p.requires_grad], lr=cfg.lr)
        rng = np.random.default_rng([cfg.seed, 11])
        if last is not None:
            start = last[0]
            state = load_state(last[1] / "state.safetensors")
            opt.load_state_dict(state["optimizer"])
            rng.bit_generator.state = json.loads(state["rng"])
            truncate_csv(out / "train_log.csv", start, "iteration")
        atomic_write_json(out / "config.json", asdict(cfg))
        if cfg.objective == "regress":
            if getattr(lm.model, "cost_head", None) is None:
                raise ImproveError(f"--objective regress needs a model with a cost head (comllm sft --cost-head); "
                                   f"'{cfg.model}' has none")  # fmt: skip
            lm.meta.mode = "cost"  # its checkpoints decide by the fitted values unless told otherwise
            lm.meta.cost_temperature = cfg.cost_temperature
        scorer = _Scorer(lm, cfg.objective, cfg.cost_temperature)
        policy = scorer.reader
        writer = _tensorboard(out / "tb")
        for it in range(start + 1, cfg.iterations + 1):
            scenario = scenarios[(it - 1) % len(scenarios)]
            t0 = time.perf_counter()
            data = collect(policy, scenario, cfg, it)
            t1 = time.perf_counter()
            shift = None
            if cfg.anchor == "start+lookahead":
                scores, shift = lookahead_increment(score(data, cfg, it, parts=True))
            else:
                scores = score(data, cfg, it)
            adv = (soft_targets(scores, cfg.tau) if cfg.objective == "soft-best"
                   else value_targets(scores) if cfg.objective == "regress" else advantages(scores))  # fmt: skip
            t2 = time.perf_counter()
            metrics = update(lm.model, ref, scorer, opt, data, adv, cfg, rng, seed=cfg.seed * 1000 + it,
                             anchor_shift=shift)  # fmt: skip
            with torch.no_grad():
                best = np.argmin(scores, axis=1)
                chosen = np.concatenate([
                    scorer.best(lm.model, data.states[i : i + cfg.batch_size])
                    for i in range(0, len(data), cfg.batch_size)
                ])  # fmt: skip
            t3 = time.perf_counter()
            ev = evaluate(policy, scenario, cfg)
            t4 = time.perf_counter()
            row = {"iteration": it, "states": len(data), **metrics, "agree_best": float((chosen == best).mean()), **ev,
                   "collect_s": t1 - t0, "score_s": t2 - t1, "update_s": t3 - t2, "eval_s": t4 - t3,
                   "mix": cfg.mix[(it - 1) % len(cfg.mix)] if cfg.mix else ""}  # fmt: skip
            _log_row(out, writer, row)
            with staged_dir(out / f"checkpoint-{it}") as tmp:
                lm.save(tmp)
                save_state(tmp / "state.safetensors", {
                    "iteration": it, "optimizer": opt.state_dict(), "rng": json.dumps(rng.bit_generator.state),
                })  # fmt: skip
            log(
                f"iteration {it}/{cfg.iterations}: {len(data)} states, E[A] {row['expected_advantage']:+.3f}, "
                f"KL {row['kl']:.4f}, agrees with LACS best {row['agree_best']:.2f}, "
                f"closed loop {row['eval_latency']:.3f} slots / {100 * row['eval_drop_rate']:.2f} % drops"
            )
            if progress is not None:
                progress(it)
        with staged_dir(out / "final") as tmp:
            lm.save(tmp)
        if writer is not None:
            writer.close()
    return out / "final"


def _set_line_compare(lm: Any, cfg: ImproveConfig) -> None:
    """``--line-compare``: the start's line rule replaced before anything is read (the reference too)."""
    if getattr(lm.model.config, "line_positions", None) != "lines":
        raise ImproveError(f"--line-compare = {cfg.line_compare!r}: '{cfg.model}' does not read its prompt under "
                           f"--line-positions lines (an embedded model trained with comllm sft --line-positions lines)")  # fmt: skip
    lm.model.config.line_compare = cfg.line_compare


def _last_checkpoint(out: Path, log: Callable[[str], None]) -> tuple[int, Path] | None:
    """The newest complete ``checkpoint-N`` (its state file loads), others skipped with a warning."""
    from comllm.checkpointing import CheckpointError, is_temporary, load_state

    found = []
    for d in out.glob("checkpoint-*"):
        if d.is_dir() and not is_temporary(d) and d.name.removeprefix("checkpoint-").isdigit():
            found.append((int(d.name.removeprefix("checkpoint-")), d))
    for it, d in sorted(found, reverse=True):
        try:
            load_state(d / "state.safetensors")
            return it, d
        except CheckpointError as err:
            log(f"warning: skipping incomplete checkpoint {d}: {err}")
    return None


def _log_row(out: Path, writer: Any, row: dict[str, Any]) -> None:
    """One iteration's row to ``train_log.csv`` and TensorBoard (numbers only there)."""
    _append_csv(out / "train_log.csv", row)
    if writer is not None:
        for k, v in row.items():
            if k not in ("iteration", "mix"):
                writer.add_scalar(f"improve/{k}", float(v), row["iteration"])
        writer.flush()


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS, lineterminator="\r\n")
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in LOG_FIELDS})


def _tensorboard(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency; without it the CSV log still holds everything
        return None
    return SummaryWriter(str(folder))
