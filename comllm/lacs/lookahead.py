"""LACS on the simulator's dynamics: score each candidate action by rolling the system forward.

For a simulator moment (a :class:`~comllm.sim.Snapshot`) and a device whose task
arrives in that slot, every candidate action is applied to the task and the system
is rolled forward ``rollouts`` times (:mod:`comllm.sim.batch`): the slot's other
arrivals and every later arrival are decided by ``other_policy`` (default the greedy
oracle), arrivals, sizes and the channel are sampled, queues drain and deadlines drop
tasks. Per candidate:

* ``current``: the current task's realised latency in slots (a drop costs ``drop_cost``:
  default the scenario's drop penalty, or ``"deadline"``), mean over rollouts;
* ``future``: the mean cost of the tasks other than the current one that arrive in
  the decision slot and the ``horizon`` slots after it (drops cost ``drop_cost``),
  pooled over rollouts;
* ``score = current + lam * future`` (lower is better).

Rollouts run until the current task and every scored task have ended, so every
latency is realised, not estimated. All candidates of a state share the same random
draws (common random numbers): identical candidates score identically, and score
differences carry little noise. Draws come from ``numpy.random.default_rng([seed,
t, device])``, so a state's scores depend only on the state, the settings and the seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from comllm.errors import ComllmError
from comllm.lacs import draws as _draws
from comllm.sim import Snapshot
from comllm.sim import batch as B

SnapshotLike = Snapshot | dict[str, Any] | str

_CHUNK = 64  # states per compiled call: bounds the memory of the random draws (~15 MB for paper-6)


class LacsError(ComllmError, ValueError):
    """Bad input to a LACS estimator (names the argument and the value)."""


@dataclass(frozen=True)
class LacsSettings:
    """Settings of the simulated look-ahead.

    ``horizon``: slots after the decision slot whose arrivals are scored;
    ``rollouts``: rollouts per candidate; ``lam``: weight of the future term;
    ``other_policy``: how other tasks are decided (``greedy``, ``local``, ``random``);
    ``drop_cost``: cost of a dropped task in slots (None: the scenario's drop penalty,
    ``"deadline"``: the deadline, as the metrics count it);
    ``seed``: base seed of the draws.
    """

    horizon: int = 5
    rollouts: int = 16
    lam: float = 0.3
    other_policy: str = "greedy"
    drop_cost: float | str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.horizon, (int, np.integer)) or self.horizon < 0:
            raise LacsError(f"horizon={self.horizon!r} must be an integer >= 0 (slots)")
        if not isinstance(self.rollouts, (int, np.integer)) or self.rollouts < 1:
            raise LacsError(f"rollouts={self.rollouts!r} must be an integer >= 1")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise LacsError(f"seed={self.seed!r} must be an integer >= 0")
        if self.other_policy not in B.RULES:
            raise LacsError(f"other_policy='{self.other_policy}' is not one of {', '.join(B.RULES)}")
        if self.drop_cost is not None and self.drop_cost != "deadline":
            if isinstance(self.drop_cost, str) or not self.drop_cost >= 0:
                raise LacsError(f"drop_cost={self.drop_cost!r} must be a number >= 0, 'deadline' or None")


#: The LACS defaults (horizon 5 slots, 16 rollouts, lambda 0.3; docs/model.md §7): the one place
#: they are stated. Every other default (the functions below, the planner, the reward, the run
#: configs of ``comllm grpo`` and ``comllm improve``, the pipeline) refers to this object.
LACS_DEFAULTS = LacsSettings()


@dataclass
class LacsResult:
    """Per-candidate look-ahead estimates of one state (arrays of shape ``(C,)``)."""

    candidates: np.ndarray  # actions scored (default 0..N)
    current: np.ndarray  # mean cost of the current task, slots (drops: drop_cost)
    future: np.ndarray  # mean cost of the scored tasks that follow, slots
    completed: np.ndarray  # fraction of rollouts in which the current task completed
    score: np.ndarray  # current + lam * future
    slots: float  # mean slots simulated per rollout


def as_snapshot(snap: SnapshotLike) -> Snapshot:
    """A :class:`Snapshot` from itself, its ``to_dict()`` form, or that form as a JSON string."""
    if isinstance(snap, Snapshot):
        return snap
    if isinstance(snap, str):
        try:
            snap = json.loads(snap)
        except json.JSONDecodeError as err:
            raise LacsError(f"snapshot is not valid JSON: {err}") from None
    if isinstance(snap, dict):
        try:
            return Snapshot.from_dict(snap)
        except (KeyError, TypeError, ValueError) as err:
            raise LacsError(f"snapshot dict is not a Snapshot.to_dict() form: {err!r}") from None
    raise LacsError(f"snapshot of type {type(snap).__name__} is not a Snapshot, dict or JSON string")


def _check_device(snap: Snapshot, device: int) -> int:
    mask = snap.arrays["new_mask"]
    if not isinstance(device, (int, np.integer)) or not 0 <= device < len(mask):
        raise LacsError(f"device={device!r} is not a device index in 0..{len(mask) - 1}")
    if not mask[device]:
        arrivals = np.flatnonzero(mask).tolist()
        raise LacsError(f"device={device} has no task arriving in slot {snap.t} (arrivals: {arrivals})")
    return int(device)


def rollout_draws(scenario, keys: Sequence[tuple[int, int, int]], rollouts: int, n_slots: int, rule: str):
    """The random draws of the rollouts of each state, from ``default_rng(key)`` per state.

    ``keys``: one ``(seed, slot, device)`` per state. Returns ``u`` (S, K, T, 3, M)
    uniforms and ``z`` (S, K, T, 2, M) normals in :func:`~comllm.sim.kernels.next_slot_inputs`'s
    layout (T = ``n_slots - 1``; ``z`` stays 0 for a static channel), and ``ua`` (S, K, T', M)
    uniforms for the random rule (T' = ``n_slots``, else 1).
    """
    S, M = len(keys), scenario.n_devices
    T = max(n_slots - 1, 1)
    u = np.empty((S, rollouts, T, 3, M))
    z = np.zeros((S, rollouts, T, 2, M))
    ua = np.zeros((S, rollouts, n_slots if rule == "random" else 1, M))
    normals = scenario.channel.model != "static"
    if _draws.AVAILABLE:  # the same numbers, drawn in compiled code (in parallel over states)
        _draws.fill_draws(keys, u, z, ua, normals, rule == "random")
        return u, z, ua
    for s, key in enumerate(keys):
        rng = np.random.default_rng(list(key))
        rng.random(out=u[s])
        if normals:
            rng.standard_normal(out=z[s])
        if rule == "random":
            rng.random(out=ua[s])
    return u, z, ua


def lacs_evaluate_batch(
    snapshots: Sequence[SnapshotLike],
    devices: Sequence[int],
    settings: LacsSettings = LacsSettings(),
    candidates: Sequence[Sequence[int]] | None = None,
    first_actions: Sequence[dict[int, int] | None] | None = None,
) -> list[LacsResult]:
    """Look-ahead estimates for many states (each a snapshot and its deciding device).

    ``candidates[i]``: actions to score for state ``i`` (default every action 0..N).
    ``first_actions[i]``: fixed actions ``{device: action}`` of other tasks of the decision
    slot (the rest follow ``settings.other_policy``). States are grouped by scenario and
    each group is one compiled call, parallel over states x candidates x rollouts.
    """
    if len(snapshots) != len(devices):
        raise LacsError(f"got {len(snapshots)} snapshots but {len(devices)} devices")
    snaps = [as_snapshot(s) for s in snapshots]
    devs = [_check_device(s, d) for s, d in zip(snaps, devices)]
    cands: list[np.ndarray] = []
    for i, s in enumerate(snaps):
        n = s.scenario.n_servers
        c = np.arange(n + 1) if candidates is None or candidates[i] is None else np.asarray(candidates[i], np.int64)
        if c.ndim != 1 or len(c) == 0 or c.min() < 0 or c.max() > n:
            raise LacsError(f"candidates[{i}]={c.tolist()} must be a non-empty list of actions in 0..{n}")
        cands.append(c.astype(np.int64))
    results: list[LacsResult | None] = [None] * len(snaps)
    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(snaps):
        groups.setdefault((s.scenario, len(cands[i])), []).append(i)
    chunks = [
        (scenario, n_cand, idx[c : c + _CHUNK]) for (scenario, n_cand), idx in groups.items()
        for c in range(0, len(idx), _CHUNK)
    ]  # fmt: skip
    for scenario, n_cand, idx in chunks:
        params = B.rollout_params(scenario, settings.horizon, settings.other_policy, settings.drop_cost)
        st = [snaps[i].arrays for i in idx]
        M = scenario.n_devices

        def stack(key: str, dtype=None) -> np.ndarray:
            return np.ascontiguousarray(np.stack([a[key] for a in st]), dtype=dtype)

        first = np.full((len(idx), M), -1, dtype=np.int64)
        if first_actions is not None:
            for r, i in enumerate(idx):
                for m, a in (first_actions[i] or {}).items():
                    if not 0 <= int(a) <= scenario.n_servers:
                        raise LacsError(f"first_actions[{i}][{m}]={a} is not an action in 0..{scenario.n_servers}")
                    first[r, int(m)] = int(a)
        keys = [(settings.seed, snaps[i].t, devs[i]) for i in idx]
        u, z, ua = rollout_draws(scenario, keys, settings.rollouts, params.max_slots, settings.other_policy)
        out = np.empty((len(idx), n_cand, settings.rollouts, B.N_OUT))
        B.rollout_batch(
            np.array([snaps[i].t for i in idx], dtype=np.int64),
            stack("arr", np.int64), stack("size", np.float64), stack("rem", np.float64),
            stack("act", np.int64), stack("stage", np.int64),
            stack("chan", np.float64), stack("chan_im", np.float64), stack("rate", np.float64),
            stack("phase", np.bool_), stack("new_mask", np.bool_), stack("new_size", np.float64),
            first, np.array([devs[i] for i in idx], dtype=np.int64), np.stack([cands[i] for i in idx]),
            u, z, ua, params.fp, params.ip, params.server_rate, params.server_ghz, params.server_cpb, out,
        )  # fmt: skip
        for r, i in enumerate(idx):
            o = out[r]
            current = o[:, :, B.OUT_CUR_COST].mean(axis=1)
            n_h = o[:, :, B.OUT_HOR_N].sum(axis=1)
            future = np.where(n_h > 0, o[:, :, B.OUT_HOR_SUM].sum(axis=1) / np.maximum(n_h, 1), 0.0)
            results[i] = LacsResult(
                candidates=cands[i],
                current=current,
                future=future,
                completed=o[:, :, B.OUT_CUR_DONE].mean(axis=1),
                score=current + settings.lam * future,
                slots=float(o[:, :, B.OUT_SLOTS].mean()),
            )
    return results  # type: ignore[return-value]


def lacs_evaluate(
    snapshot: SnapshotLike,
    device: int,
    settings: LacsSettings = LacsSettings(),
    candidates: Sequence[int] | None = None,
    first_actions: dict[int, int] | None = None,
) -> LacsResult:
    """Look-ahead estimates of one state; see :func:`lacs_evaluate_batch`."""
    return lacs_evaluate_batch(
        [snapshot], [device], settings, None if candidates is None else [candidates], [first_actions]
    )[0]


def lacs_scores(
    snapshot: SnapshotLike,
    device: int,
    horizon: int = LACS_DEFAULTS.horizon,
    rollouts: int = LACS_DEFAULTS.rollouts,
    lam: float = LACS_DEFAULTS.lam,
    seed: int = LACS_DEFAULTS.seed,
    other_policy: str = LACS_DEFAULTS.other_policy,
    drop_cost: float | str | None = LACS_DEFAULTS.drop_cost,
) -> np.ndarray:
    """LACS score (slots, lower is better) of every action 0..N of ``device``'s arriving task, shape ``(N + 1,)``."""
    settings = LacsSettings(horizon, rollouts, lam, other_policy, drop_cost, seed)
    return lacs_evaluate(snapshot, device, settings).score


def lacs_scores_batch(
    snapshots: Sequence[SnapshotLike],
    devices: Sequence[int],
    horizon: int = LACS_DEFAULTS.horizon,
    rollouts: int = LACS_DEFAULTS.rollouts,
    lam: float = LACS_DEFAULTS.lam,
    seed: int = LACS_DEFAULTS.seed,
    other_policy: str = LACS_DEFAULTS.other_policy,
    drop_cost: float | str | None = LACS_DEFAULTS.drop_cost,
) -> list[np.ndarray]:
    """:func:`lacs_scores` of many states at once (one ``(N_i + 1,)`` array per state)."""
    settings = LacsSettings(horizon, rollouts, lam, other_policy, drop_cost, seed)
    return [r.score for r in lacs_evaluate_batch(snapshots, devices, settings)]
