"""``comllm/MEC-v0``: the MEC offloading problem as a single-agent Gymnasium environment."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from comllm.envs.observation import ObsLayout, observation_from_batch, observation_space
from comllm.errors import ComllmError
from comllm.scenario import Scenario, load_scenario
from comllm.sim import MECSimulator
from comllm.sim import kernels as K


class EnvError(ComllmError, ValueError):
    """A bad environment argument (the message names it and its value)."""


class MECEnv(gym.Env):
    """Task offloading on the comllm simulator, one decision per arriving task.

    **Dynamics.** A :class:`~comllm.sim.MECSimulator` of ``scenario`` owns the
    queues, arrivals and channel. The tasks that arrive in one slot are decided
    one per environment step, by the scenario's decision protocol (the field
    ``decisions``, see :mod:`comllm.sim.simulator`):

    * ``simultaneous`` (default): in device order, every one from the state at
      the start of the slot (:meth:`~comllm.sim.MECSimulator.observe`), so no
      task sees another's decision;
    * ``sequential``: in the slot's :meth:`~comllm.sim.MECSimulator.decision_order`
      (a seeded permutation), each task's observation being
      :meth:`~comllm.sim.MECSimulator.observe_turn` given the actions of the
      steps before it in the slot: the servers chosen earlier in the slot show
      those tasks in their incoming traffic.

    After the slot's last decision the slot runs. Slots with no arrival run
    silently. One shared agent decides for every device: the standard
    single-agent reformulation of the multi-device problem (Tang & Wong train
    one network per device; here one network sees the deciding device's own
    observation, which is the same information).

    **Observation** ``Box(0, high, (6 + 5N + N·H,), float32)`` in raw units:
    task size (Mbit), the device's local CPU and uplink waits (slots), its
    current upload rate (Mbit/slot), then per server the queued Mbit, the
    active queue count and the CPU frequency (GHz), then the fresh view: per
    server the incoming Mbit (still to send by the tasks bound for it in
    devices' uplinks) and the number of those tasks, the number of tasks
    arriving in the slot and how many of the slot's other tasks this decision
    does not see; then each server's active count over the last ``H`` slots
    (oldest first). The exact layout (version ``OBS_LAYOUT_VERSION``) is the
    table of :mod:`comllm.envs.observation` and
    :class:`~comllm.envs.observation.ObsLayout`. It is exactly what a deployed
    policy sees under the same protocol: under ``simultaneous`` the tasks of a
    slot share the server part (the slot-start state).

    **Action** ``Discrete(N + 1)``: 0 = compute locally, ``j`` = offload to server ``j``.

    **Reward: delayed credit.** A task's reward is ``-latency`` in slots when it
    completes, ``-drop_penalty`` when it is dropped; it is known only when the
    task ends (up to ``deadline`` slots, dozens of steps, later), because its
    latency depends on the tasks decided after it. The reward returned by
    :meth:`step` is the sum of the rewards of the tasks that *ended* during the
    step, so an episode's return is exactly minus the total cost of its tasks.
    For per-decision learning, ``info`` carries ``task_id`` (the id of the task
    just decided) and ``credit_ids`` / ``credit_rewards`` (the tasks that ended
    during the step and their rewards): the agents of :mod:`comllm.drl` store
    each transition when it happens and fill in its reward when its task ends.
    Task ids are the simulator log's (device order within a slot), so under
    ``sequential`` the ids of a slot's steps come in the decision order.

    **Episodes** last ``episode_slots`` slots and end by truncation (there is
    no terminal state). At the end, the simulator runs ``deadline`` more slots
    with every new task computed locally (local tasks never delay earlier
    tasks), so every decided task is credited within its episode; the last
    step's reward and credit include them.

    ``info`` of :meth:`reset` describes the first task to decide (``task_id``,
    ``device``, ``slot``); ``info`` of :meth:`step` describes the task the step
    decided (:meth:`current_task` tells the next one), and at the
    end of an episode ``episode_stats`` = ``{tasks, avg_latency, drop_rate}`` (latency
    in slots, a drop counted at the deadline, as in closed-loop evaluation).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        scenario: str | Scenario = "paper-6",
        episode_slots: int = 200,
        overrides: list[str] | dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """``scenario``: a preset name, a YAML path or a :class:`Scenario`;
        ``overrides`` (``["key=value", ...]`` or a dict) and keyword ``fields``
        change scenario fields, e.g. ``MECEnv("paper-6", arrival_prob=0.4)``.
        """
        if isinstance(scenario, Scenario):
            sc = scenario
            if overrides:
                sc = sc.with_overrides(overrides)
        else:
            sc = load_scenario(scenario, overrides)
        if fields:
            sc = sc.with_overrides(dict(fields))
        if not isinstance(episode_slots, (int, np.integer)) or episode_slots < 1:
            raise EnvError(f"episode_slots must be a positive integer, got {episode_slots!r}")
        if sc.arrival_prob <= 0 and (sc.bursty is None or sc.bursty.burst_prob <= 0):
            raise EnvError(f"arrival_prob={sc.arrival_prob}: no task would ever arrive")
        self.scenario = sc
        self.episode_slots = int(episode_slots)
        self.layout = ObsLayout.of(sc)
        self.observation_space = observation_space(sc)
        self.action_space = spaces.Discrete(sc.n_servers + 1)
        self.sim = MECSimulator(sc, seed=0)
        self._penalty = float(sc.drop_penalty)
        self._obs = np.zeros((0, self.layout.size), dtype=np.float32)
        self._actions = np.zeros(sc.n_devices, dtype=np.int64)
        self._order = np.zeros(0, dtype=np.int64)
        self._sequential = sc.decisions == "sequential"
        self._i = 0
        self._t0 = 0
        self._done = True

    # ------------------------------------------------------------------ API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.sim_seed = int(self.np_random.integers(2**63 - 1))  # the episode's simulator seed
        self.sim.reset(self.sim_seed)
        self._t0 = 0
        self._ended: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._ep_tasks = 0
        self._ep_latency = 0.0
        self._ep_drops = 0
        self._done = False
        self._skip_empty()
        if self._truncated():  # no arrival in a whole episode: keep going until one comes
            self._t0 = self.sim.t
            while len(self.sim.arrivals) == 0:
                self._advance(np.zeros(0, dtype=np.int64))
            self._ended.clear()
        self._load_slot()
        return self._task_obs(), self._info()

    def step(self, action):
        if self._done:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        a = int(action)
        if not 0 <= a <= self.scenario.n_servers:
            raise EnvError(f"action {action!r} is not in 0..{self.scenario.n_servers} (0 = local, j = server j)")
        info = self._info()
        self._actions[self._order[self._i]] = a  # actions are kept in device order
        self._i += 1
        truncated = False
        if self._i == len(self.sim.arrivals):
            self._advance(self._actions[: self._i].copy())
            self._skip_empty()
            truncated = self._truncated()
            if not truncated:
                self._load_slot()
        if truncated:
            obs = self._final_observation()
            self._drain()
            self._done = True
        else:
            obs = self._task_obs()
        ids, rewards = self._pop_credit()
        info["credit_ids"] = ids
        info["credit_rewards"] = rewards
        if truncated:
            info["episode_stats"] = {
                "tasks": self._ep_tasks,
                "avg_latency": self._ep_latency / max(self._ep_tasks, 1),
                "drop_rate": self._ep_drops / max(self._ep_tasks, 1),
            }
        return obs, float(rewards.sum()), False, truncated, info

    def current_task(self) -> dict[str, int]:
        """``task_id``, ``device`` and ``slot`` of the task the next :meth:`step` decides."""
        return self._info()

    # ------------------------------------------------------------- internals
    def _info(self) -> dict[str, Any]:
        if self._i < len(self._order):
            pos = int(self._order[self._i])
            return {"task_id": self._first_tid + pos, "device": int(self.sim.arrivals[pos]), "slot": int(self.sim.t)}
        return {"task_id": self._first_tid + self._i, "device": -1, "slot": int(self.sim.t)}

    def _load_slot(self) -> None:
        """Start deciding the current slot's arrivals (the simulator's decision order)."""
        self._order = self.sim.decision_order()
        if not self._sequential:
            self._obs = observation_from_batch(self.sim.observe())
        self._actions[: len(self._order)] = 0
        self._first_tid = self.sim.log.n
        self._i = 0

    def _task_obs(self) -> np.ndarray:
        """The observation of the slot's ``_i``-th task to decide, by the protocol."""
        if self._sequential:
            n = len(self._order)
            return observation_from_batch(self.sim.observe_turn(self._i, self._actions[:n]))[0]
        return self._obs[self._order[self._i]].copy()

    def _advance(self, actions: np.ndarray, limit_tid: int | None = None) -> None:
        """Run one slot; keep the outcomes of tasks with id below ``limit_tid`` (all if None)."""
        res = self.sim.step(actions)
        keep = res.code > 0 if limit_tid is None else res.task_id < limit_tid
        if keep.any():
            self._ended.append((res.task_id[keep], res.code[keep], res.latency[keep]))

    def _skip_empty(self) -> None:
        while len(self.sim.arrivals) == 0 and not self._truncated():
            self._advance(np.zeros(0, dtype=np.int64))

    def _truncated(self) -> bool:
        return self.sim.t - self._t0 >= self.episode_slots

    def _final_observation(self) -> np.ndarray:
        """The next task's observation (zeros for the task if none arrives in the final slot)."""
        if len(self.sim.arrivals):
            if self._sequential:
                return observation_from_batch(self.sim.observe_turn(0, np.zeros(len(self.sim.arrivals), np.int64)))[0]
            return observation_from_batch(self.sim.observe().subset(slice(0, 1)))[0]
        lw, tw, q, a = self.sim.queue_view()
        inc, inc_n = self.sim.incoming_view()
        lay = self.layout
        obs = np.zeros(lay.size, dtype=np.float32)
        obs[3] = self.sim.rate[0]
        obs[lay.queued] = q
        obs[lay.active] = a
        obs[lay.ghz] = [s.ghz for s in self.scenario.servers]
        obs[lay.incoming] = inc
        obs[lay.incoming_n] = inc_n
        obs[lay.history] = self.sim.history.reshape(-1)
        return obs

    def _drain(self) -> None:
        """Run until every decided task has ended, new tasks computed locally."""
        limit = self.sim.log.n
        for _ in range(self.scenario.deadline):
            self._advance(np.zeros(len(self.sim.arrivals), dtype=np.int64), limit_tid=limit)

    def _pop_credit(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._ended:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        ids = np.concatenate([e[0] for e in self._ended])
        code = np.concatenate([e[1] for e in self._ended])
        lat = np.concatenate([e[2] for e in self._ended])
        self._ended.clear()
        done = code == K.OUT_DONE
        self._ep_tasks += len(ids)
        self._ep_latency += float(lat.sum())
        self._ep_drops += int((~done).sum())
        return ids, np.where(done, -lat, -self._penalty)
