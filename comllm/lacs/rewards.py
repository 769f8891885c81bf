"""GRPO reward functions in TRL's form, ``f(prompts, completions, **kwargs) -> list[float]``.

The state of a completion is never re-parsed from its prompt: each record carries its
simulator snapshot (``Snapshot.to_dict()``, as a dict or a JSON string) and the
deciding device's index in dataset columns (``snapshot`` and ``device`` by default),
which TRL passes to reward functions as keyword lists aligned with the completions.
Completions are parsed with :func:`comllm.text.parse_answer`. Records of a
``decisions=sequential`` trajectory also carry the slot's earlier decisions (column
``slot_decisions``, a JSON list of ``[device, action]``): the look-ahead fixes them, as
the simulator would have, and lets ``other_policy`` decide the tasks still to come.

Three callables, logged separately by TRL under their names, whose sum (TRL's default
reward weights of 1) is the reference reward (docs/model.md §8). For a parseable answer
``a`` with one-step cost ``cost(a)`` (:func:`comllm.cost.action_costs`, slots) and
look-ahead term ``future(a)``, ``C = cost + lam * future``:

* ``format``: ``format_weight * [the answer is a plain canonical answer]``;
* ``task``: ``task_weight * (1 - cost - over_deadline_penalty * [C > max_delay])``;
* ``lacs``: ``-task_weight * lam * future``;

an unparseable answer gets ``unparseable`` (-10) from ``task`` and 0 from the others.
``cost`` is the fresh view's one-step cost (``task_cost="incoming"``, the default: each server's
backlog counts the Mbit already in flight to it, ``greedy:incoming``'s estimate, README "What a
policy sees"), ``greedy:sharing``'s (``task_cost="sharing"``: the server shared among its queues,
what a ``lean-sharing`` prompt prints) or the paper's formula (``task_cost="greedy"``, the
reference's), which ignores that traffic and pulls a model trained on the fresh view back towards
the stale greedy. A sequential record's task is priced as it saw the slot: with the traffic of the
tasks decided before it (its ``slot_decisions``) in flight (:meth:`MECSimulator.observe_after`).
``shaping="normalised"`` replaces the last two by ratios in (0, 1]:
``task = task_weight * min_b cost(b) / cost(a)`` and
``lacs = task_weight * (min_b C(b) / C(a) - min_b cost(b) / cost(a))``.

``future`` comes from ``lacs``: ``sim`` (rollouts on the simulator,
:mod:`comllm.lacs.lookahead`), ``reference`` (the reference's cheap estimator,
:mod:`comllm.lacs.reference`) or ``off`` (0: GRPO without LACS). Rewards are
deterministic given the seed: a record's draws depend only on the seed and the record.
"""

from __future__ import annotations

import json
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from comllm.cost import estimate_costs
from comllm.lacs.lookahead import LACS_DEFAULTS, LacsError, LacsSettings, as_snapshot, lacs_evaluate_batch
from comllm.lacs.reference import reference_terms
from comllm.sim import MECSimulator
from comllm.state import StateBatch
from comllm.text import answer_strings, parse_answer

RewardFunc = Callable[..., list[float]]

LACS_MODES = ("sim", "reference", "off")
SHAPINGS = ("reference", "normalised")
#: the task cost's names: ``greedy`` is the paper's formula, the others the estimates of those names (comllm.cost.ESTIMATES)
TASK_COSTS = ("greedy", "incoming", "sharing")


@dataclass(frozen=True)
class RewardConfig:
    """Reward settings; defaults are the reference's (docs/model.md §8) and the LACS defaults (§7).

    ``horizon`` (slots), ``rollouts``, ``other_policy``, ``drop_cost`` configure ``lacs="sim"``;
    ``n_future`` configures ``lacs="reference"``.
    """

    lacs: str = "sim"
    lam: float = LACS_DEFAULTS.lam
    task_weight: float = 0.8
    format_weight: float = 0.2
    unparseable: float = -10.0
    over_deadline_penalty: float = 10.0
    shaping: str = "reference"
    # incoming by default: priced by the paper's stale formula, TRL's GRPO pulled the fresh-view SFT model
    # back towards stale greedy (README, "The all-action stage": the TRL screen)
    task_cost: str = "incoming"
    horizon: int = LACS_DEFAULTS.horizon
    rollouts: int = LACS_DEFAULTS.rollouts
    other_policy: str = LACS_DEFAULTS.other_policy
    drop_cost: float | str | None = LACS_DEFAULTS.drop_cost
    n_future: int = 3
    seed: int = 0
    snapshot_column: str = "snapshot"
    device_column: str = "device"
    decisions_column: str = "slot_decisions"

    def __post_init__(self) -> None:
        if self.lacs not in LACS_MODES:
            raise LacsError(f"lacs='{self.lacs}' is not one of {', '.join(LACS_MODES)}")
        if self.shaping not in SHAPINGS:
            raise LacsError(f"shaping='{self.shaping}' is not one of {', '.join(SHAPINGS)}")
        if self.task_cost not in TASK_COSTS:
            raise LacsError(f"task_cost='{self.task_cost}' is not one of {', '.join(TASK_COSTS)}")
        if not self.lam >= 0:
            raise LacsError(f"lam={self.lam!r} must be >= 0")
        if self.n_future < 1:
            raise LacsError(f"n_future={self.n_future!r} must be >= 1")
        self.lacs_settings()  # validates horizon, rollouts, other_policy, drop_cost

    def lacs_settings(self) -> LacsSettings:
        return LacsSettings(self.horizon, self.rollouts, self.lam, self.other_policy, self.drop_cost, self.seed)


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a conversation whose last message is the answer."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return ""


def is_plain_answer(text: str, n_servers: int) -> bool:
    """True if ``text`` is exactly a canonical answer (``local`` / ``server K`` or the Chinese ones)."""
    t = unicodedata.normalize("NFKC", text).strip()
    canon = answer_strings(n_servers, "en")
    return t.lower() in canon or t in answer_strings(n_servers, "zh")


@dataclass
class _Record:
    """A record's state, parsed once: the snapshot, the device and its one-step view."""

    snapshot: Any
    device: int
    batch: StateBatch  # one row: the device's task
    cost: np.ndarray  # (N + 1,) one-step costs, slots
    decided: dict[int, int] | None = None  # sequential: actions decided earlier in the slot


class LacsRewards:
    """The three reward callables of a :class:`RewardConfig`, sharing one cache.

    ``funcs()`` returns ``[format, task, lacs]`` for ``GRPOTrainer(reward_funcs=...)``.
    The look-ahead of a batch is computed once (the first of the three to be called)
    and reused by the other two; parsed records are kept in an LRU cache.
    """

    def __init__(self, config: RewardConfig = RewardConfig(), cache_size: int = 4096) -> None:
        self.config = config
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._cache_size = cache_size
        self._last: tuple[Any, dict[str, list[float]]] | None = None

    # --------------------------------------------------------------- records
    @staticmethod
    def _key(snapshot: Any, device: Any, decided: Any = None) -> str:
        text = snapshot if isinstance(snapshot, str) else json.dumps(snapshot, sort_keys=True, default=str)
        extra = "" if decided in (None, "", "null") else f"|{decided if isinstance(decided, str) else json.dumps(decided)}"
        return f"{int(device)}|{text}{extra}"

    @staticmethod
    def _decided(value: Any) -> dict[int, int] | None:
        if value in (None, "", "null"):
            return None
        pairs = json.loads(value) if isinstance(value, str) else value
        try:
            return {int(m): int(a) for m, a in pairs}
        except (TypeError, ValueError):
            raise LacsError(f"slot_decisions={value!r} is not a list of [device, action] pairs") from None

    def _record(self, key: str, snapshot: Any, device: Any, decided: Any = None) -> _Record:
        rec = self._records.get(key)
        if rec is not None:
            self._records.move_to_end(key)
            return rec
        snap = as_snapshot(snapshot)
        dev = int(device)
        sim = MECSimulator.from_snapshot(snap)
        batch = sim.observe()
        rows = np.flatnonzero(batch.device == dev)
        if len(rows) != 1:
            raise LacsError(f"device={dev} has no task arriving in the snapshot's slot {snap.t}")
        fixed = self._decided(decided)
        # a sequential record's task sees the slot's earlier decisions (their traffic is headed out)
        row = sim.observe_after(dev, fixed) if fixed else batch.subset(rows)
        cost = estimate_costs(row, "paper" if self.config.task_cost == "greedy" else self.config.task_cost)[0]
        rec = _Record(snap, dev, row, cost, fixed)
        self._records[key] = rec
        if len(self._records) > self._cache_size:
            self._records.popitem(last=False)
        return rec

    # ------------------------------------------------------------ the rewards
    def compute(self, completions: Sequence[Any], **kwargs: Any) -> dict[str, list[float]]:
        """All three reward terms of a batch, ``{"format": [...], "task": [...], "lacs": [...]}``."""
        cfg = self.config
        texts = [completion_text(c) for c in completions]
        snaps = kwargs.get(cfg.snapshot_column)
        devs = kwargs.get(cfg.device_column)
        if snaps is None or devs is None:
            raise LacsError(
                f"reward functions need the dataset columns '{cfg.snapshot_column}' and '{cfg.device_column}' "
                f"(got columns: {', '.join(sorted(kwargs)) or 'none'})"
            )
        if len(snaps) != len(texts) or len(devs) != len(texts):
            raise LacsError(f"got {len(texts)} completions, {len(snaps)} snapshots and {len(devs)} devices")
        decs = kwargs.get(cfg.decisions_column) or [None] * len(texts)
        keys = [self._key(s, d, e) for s, d, e in zip(snaps, devs, decs)]
        fingerprint = (tuple(texts), tuple(keys))
        if self._last is not None and self._last[0] == fingerprint:
            return self._last[1]
        recs = [self._record(k, s, d, e) for k, s, d, e in zip(keys, snaps, devs, decs)]
        actions = [parse_answer(t, r.batch.n_servers) for t, r in zip(texts, recs)]
        future = self._future(keys, recs, actions)
        out: dict[str, list[float]] = {"format": [], "task": [], "lacs": []}
        w, lam = cfg.task_weight, cfg.lam
        for text, rec, a, fut in zip(texts, recs, actions, future):
            if a is None:
                out["format"].append(0.0)
                out["task"].append(cfg.unparseable)
                out["lacs"].append(0.0)
                continue
            out["format"].append(cfg.format_weight * float(is_plain_answer(text, rec.batch.n_servers)))
            cost = float(rec.cost[a])
            if cfg.shaping == "reference":
                total = cost + lam * fut[a]
                over = float(total > rec.batch.max_delay[0])
                out["task"].append(w * (1.0 - cost - cfg.over_deadline_penalty * over))
                out["lacs"].append(0.0 - w * lam * float(fut[a]))
            else:
                one = float(rec.cost.min() / cost)
                c_all = rec.cost + lam * fut
                out["task"].append(w * one)
                out["lacs"].append(w * (float(c_all.min() / c_all[a]) - one))
        self._last = (fingerprint, out)
        return out

    def _future(self, keys: list[str], recs: list[_Record], actions: list[int | None]) -> list[np.ndarray]:
        """Per completion, the future term of every action of its state (N + 1,), slots (NaN: not scored)."""
        cfg = self.config
        if cfg.lacs == "off":
            return [np.zeros(r.batch.n_actions) for r in recs]
        states: dict[str, _Record] = {}  # one evaluation per distinct state of the batch
        wanted: dict[str, set[int]] = {}
        for k, r, a in zip(keys, recs, actions):
            states.setdefault(k, r)
            wanted.setdefault(k, set())
            if a is not None:
                wanted[k].add(a)
        fut: dict[str, np.ndarray] = {}
        if cfg.lacs == "reference":
            for k, r in states.items():
                fut[k] = reference_terms(r.batch, cfg.n_future, cfg.seed)[1][0]
        else:
            # score only the actions the completions chose (every action for normalised shaping)
            ks = list(states)
            cands = [
                list(range(states[k].batch.n_actions)) if cfg.shaping == "normalised" else sorted(wanted[k]) or [0]
                for k in ks
            ]
            res = lacs_evaluate_batch(
                [states[k].snapshot for k in ks], [states[k].device for k in ks], cfg.lacs_settings(), cands,
                [states[k].decided for k in ks],
            )
            for k, c, lr in zip(ks, cands, res):
                f = np.full(states[k].batch.n_actions, np.nan)
                f[np.asarray(c)] = lr.future
                fut[k] = f
        return [fut[k] for k in keys]

    def funcs(self) -> list[RewardFunc]:
        """``[format, task, lacs]`` reward callables (TRL logs each under its ``__name__``)."""
        return [self._term("format"), self._term("task"), self._term("lacs")]

    def _term(self, name: str) -> RewardFunc:
        def reward(prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any) -> list[float]:
            return self.compute(completions, **kwargs)[name]

        reward.__name__ = name
        reward.__qualname__ = f"LacsRewards.{name}"
        reward.__doc__ = f"The '{name}' reward term of comllm.lacs.rewards (see the module docstring)."
        return reward


def make_reward_funcs(config: RewardConfig | None = None, **overrides: Any) -> list[RewardFunc]:
    """``[format, task, lacs]`` TRL reward callables for ``config`` (or the defaults with ``overrides``)."""
    cfg = config if config is not None else RewardConfig(**overrides)
    return LacsRewards(cfg).funcs()
