"""``lacs-planner[:H,K[,RULE[,LAM]]]``: an online look-ahead planner, the non-learned upper reference of LACS.

At each slot it scores every action of each arriving task with the simulated LACS
(:mod:`comllm.lacs.lookahead`, horizon ``H`` slots, ``K`` rollouts per action) from the
live simulator's state and takes the best. It follows the scenario's decision protocol:
under ``simultaneous`` every task of the slot is planned from the slot-start state, its
rollouts letting the greedy oracle decide the slot's other tasks; under ``sequential``
a task's rollouts fix the decisions taken earlier in the slot (``sim.decided``) and let
the greedy oracle decide the tasks still to come. ``RULE`` replaces the greedy oracle in the
rollouts by another rule of :data:`comllm.sim.batch.RULES` (e.g. ``greedy-incoming``:
``greedy:incoming`` deciding each slot's tasks in turn); ``LAM`` is the weight ``lam`` of the
future term (default :data:`~comllm.lacs.lookahead.LACS_DEFAULTS`' 0.3; ``H`` 0 scores the task's own
simulated latency alone, which is how README's "LACS" section measures what the look-ahead adds).

A :class:`~comllm.policies.Policy` only receives a :class:`~comllm.state.StateBatch`,
so the planner needs the simulator itself: the closed-loop evaluator calls
``policy.bind(sim)`` at the start of each episode (policies with a ``bind`` method).
The planner never reads the simulator's random stream: its rollouts draw their own
futures, seeded by ``(seed, slot, device)``.
"""

from __future__ import annotations

import numpy as np

from comllm.lacs.lookahead import LACS_DEFAULTS, LacsSettings, lacs_evaluate
from comllm.policies.base import Policy, PolicyError, register_policy
from comllm.scenario import Scenario
from comllm.sim import MECSimulator, Snapshot
from comllm.sim.batch import RULES
from comllm.state import StateBatch

_STATE_KEYS = ("arr", "size", "rem", "act", "stage", "chan", "chan_im", "rate", "phase", "new_mask", "new_size")


def live_snapshot(sim: MECSimulator) -> Snapshot:
    """The simulator's current moment as a :class:`Snapshot` of views (no copies, no log, no random stream).

    Enough for look-ahead rollouts, which copy what they change; not for restoring.
    """
    return Snapshot(
        scenario=sim.scenario, t=sim.t, arrays={k: getattr(sim, k) for k in _STATE_KEYS}, rng_state={}, log=None
    )


class LacsPlanner(Policy):
    """Pick, per arriving task, the action of least LACS score (see the module docstring)."""

    name = "lacs-planner"
    needs_simulator = True
    slow = True

    def __init__(
        self,
        horizon: int = LACS_DEFAULTS.horizon,
        rollouts: int = LACS_DEFAULTS.rollouts,
        lam: float = LACS_DEFAULTS.lam,
        other_policy: str = LACS_DEFAULTS.other_policy,
    ) -> None:
        self.settings = LacsSettings(horizon=horizon, rollouts=rollouts, lam=lam, other_policy=other_policy)
        spec = [str(horizon), str(rollouts)]  # the shortest spec that rebuilds these settings
        if other_policy != LACS_DEFAULTS.other_policy or lam != LACS_DEFAULTS.lam:
            spec.append(other_policy)
        if lam != LACS_DEFAULTS.lam:
            spec.append(f"{lam:g}")
        self.name = "lacs-planner:" + ",".join(spec)
        self.sim: MECSimulator | None = None
        self._seed = 0
        self._decisions = 0

    def bind(self, sim: MECSimulator) -> None:
        """Plan on ``sim``'s live state (the closed-loop evaluator calls this each episode)."""
        self.sim = sim

    def reset(self, seed: int | None = None) -> None:
        self._seed = 0 if seed is None else int(seed)
        self._decisions = 0

    def act(self, batch: StateBatch) -> np.ndarray:
        sim = self.sim
        if sim is None:
            raise PolicyError("lacs-planner plans on the live simulator: call policy.bind(sim) first")
        if len(batch) == 0:
            return np.zeros(0, dtype=np.int64)
        if not np.isin(batch.device, sim.arrivals).all() or ((batch.slot >= 0) & (batch.slot != sim.t)).any():
            raise PolicyError("lacs-planner got states that are not the bound simulator's current arrivals")
        snap = live_snapshot(sim)
        settings = LacsSettings(
            self.settings.horizon, self.settings.rollouts, self.settings.lam, self.settings.other_policy,
            None, self._seed,
        )  # fmt: skip
        fixed = dict(sim.decided) if sim.sequential else {}
        out = np.empty(len(batch), dtype=np.int64)
        for i, dev in enumerate(batch.device.tolist()):
            res = lacs_evaluate(snap, dev, settings, first_actions=fixed)
            out[i] = int(res.candidates[np.argmin(res.score)])
        self._decisions += len(batch)
        return out

    @property
    def stats(self) -> dict[str, float]:
        return {"decisions": float(self._decisions)}


def _factory(arg: str | None, scenario: Scenario | None) -> LacsPlanner:
    if not arg:
        return LacsPlanner()
    parts = [p.strip() for p in arg.split(",")]
    try:
        if len(parts) not in (2, 3, 4):
            raise ValueError
        h, k = int(parts[0]), int(parts[1])
    except ValueError:
        raise PolicyError(
            f"lacs-planner takes 'H,K[,RULE[,LAM]]' (horizon slots, rollouts, the rollouts' rule, the future "
            f"term's weight), e.g. lacs-planner:5,16, lacs-planner:5,16,greedy-incoming or lacs-planner:5,16,greedy,1; "
            f"got '{arg}'"
        )
    if h < 0 or k < 1:
        raise PolicyError(f"lacs-planner:{arg}: horizon must be >= 0 and rollouts >= 1")
    rule = parts[2] if len(parts) >= 3 else LACS_DEFAULTS.other_policy
    if rule not in RULES:
        raise PolicyError(f"lacs-planner:{arg}: rule '{rule}' is not one of {', '.join(RULES)}")
    lam = LACS_DEFAULTS.lam
    if len(parts) == 4:
        try:
            lam = float(parts[3])
        except ValueError:
            lam = float("nan")
        if not (np.isfinite(lam) and lam >= 0):
            raise PolicyError(f"lacs-planner:{arg}: LAM '{parts[3]}' is not a number >= 0 (weight of the future term)")
    return LacsPlanner(horizon=h, rollouts=k, lam=lam, other_policy=rule)


register_policy(
    "lacs-planner", "look-ahead planner: best simulated LACS score per task (arg H,K[,RULE[,LAM]])", LacsPlanner
)(_factory)
