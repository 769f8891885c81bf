"""The fixed-size numeric observation of one arriving task (the DRL agents' input).

One vector per task, built from a :class:`~comllm.state.StateBatch` row, so the
Gymnasium environment and the deployed DRL policies see exactly the same
numbers. Layout version 2 (:data:`OBS_LAYOUT_VERSION`) for ``N`` servers and a
history of ``H`` slots (``6 + 5N + N·H`` values, float32, raw units):

========================  =====================================  =============
index                     feature                                unit
========================  =====================================  =============
0                         task size                              Mbit
1                         own local CPU queue wait               slots
2                         own uplink queue wait                  slots
3                         own current upload rate                Mbit/slot
4 .. 4+N                  queued bits at each server             Mbit
4+N .. 4+2N               active (non-empty) queues per server   count
4+2N .. 4+3N              CPU frequency of each server           GHz
4+3N .. 4+4N              incoming: still to send by the tasks   Mbit
                          bound for each server in devices'
                          uplinks
4+4N .. 4+5N              incoming tasks per server (those       count
                          tasks' number)
4+5N                      tasks arriving in this slot, this one  count
                          included (``slot_arrivals``)
5+5N                      the slot's other tasks whose decision  count
                          this one does not see (``slot_pending``)
6+5N .. 6+5N+N·H          active count history, server-major,    count
                          oldest slot first
========================  =====================================  =============

Indices ``4+3N .. 6+5N`` are the *fresh view* of :mod:`comllm.state`: under
``decisions=sequential`` the incoming block also counts the tasks decided
earlier in the same slot (whole size, one task each) and ``slot_pending`` is
the number decided after this one; under ``simultaneous`` every task of a slot
sees the slot-start traffic and ``slot_pending`` is the slot's other arrivals.
Layout version 1 (``4 + 3N + N·H`` values: the same without the fresh-view
block) is that of checkpoints trained before it; they are refused
(:func:`comllm.drl.checkpoint.check_layout`).

:func:`feature_scale` gives per-feature divisors that bring typical values to
order one; the agents divide by it before their networks (the scale is saved
with each checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import gymnasium as gym
from gymnasium import spaces

from comllm.scenario import Scenario
from comllm.state import StateBatch

#: the version of the layout above, recorded in every DRL checkpoint (``obs_layout``)
OBS_LAYOUT_VERSION = 2


@dataclass(frozen=True)
class ObsLayout:
    """Where each feature group sits in the observation vector (layout :data:`OBS_LAYOUT_VERSION`)."""

    n_servers: int
    history_len: int

    version = OBS_LAYOUT_VERSION

    @property
    def n_static(self) -> int:
        """Features before the history block: 6 task/device/slot values + 5 per server."""
        return 6 + 5 * self.n_servers

    @property
    def size(self) -> int:
        return self.n_static + self.n_servers * self.history_len

    @property
    def queued(self) -> slice:
        return slice(4, 4 + self.n_servers)

    @property
    def active(self) -> slice:
        return slice(4 + self.n_servers, 4 + 2 * self.n_servers)

    @property
    def ghz(self) -> slice:
        return slice(4 + 2 * self.n_servers, 4 + 3 * self.n_servers)

    @property
    def incoming(self) -> slice:
        """Mbit still to send by the tasks bound for each server (the fresh view)."""
        return slice(4 + 3 * self.n_servers, 4 + 4 * self.n_servers)

    @property
    def incoming_n(self) -> slice:
        """Number of those tasks per server."""
        return slice(4 + 4 * self.n_servers, 4 + 5 * self.n_servers)

    @property
    def slot_arrivals(self) -> int:
        return 4 + 5 * self.n_servers

    @property
    def slot_pending(self) -> int:
        return 5 + 5 * self.n_servers

    @property
    def history(self) -> slice:
        return slice(self.n_static, self.size)

    @staticmethod
    def legacy_size(n_servers: int, history_len: int) -> int:
        """Size of the layout-1 observation (before the fresh view): ``4 + 3N + N·H``."""
        return 4 + 3 * n_servers + n_servers * history_len

    @classmethod
    def of(cls, scenario: Scenario) -> "ObsLayout":
        return cls(scenario.n_servers, scenario.history_len)


def observation_from_batch(batch: StateBatch) -> np.ndarray:
    """Observation vectors of every task of ``batch``, shape ``(B, 6 + 5N + N·H)``, float32."""
    b = len(batch)
    return np.concatenate(
        [
            batch.task_size[:, None],
            batch.local_wait[:, None],
            batch.tx_wait[:, None],
            batch.upload_rate[:, None],
            batch.queued,
            batch.active,
            batch.server_ghz,
            batch.incoming,
            batch.incoming_n,
            batch.slot_arrivals[:, None],
            batch.slot_pending[:, None],
            batch.history.reshape(b, -1),
        ],
        axis=1,
        dtype=np.float32,
    )


def observation_space(scenario: Scenario) -> spaces.Box:
    """The Box the observations of ``scenario`` live in (finite bounds from the scenario)."""
    lay = ObsLayout.of(scenario)
    n, h = lay.n_servers, lay.history_len
    m, d = scenario.n_devices, scenario.deadline
    max_rate = scenario.uplink_rate * (scenario.channel.max_factor if scenario.channel.model != "static" else 1.0)
    high = np.concatenate(
        [
            [scenario.size_max, d, d, max_rate],
            np.full(n, m * d * scenario.size_max),  # every live task of every device at one server
            np.full(n, m),
            [s.ghz for s in scenario.servers],
            # every live task of every device in its uplink to one server, plus (sequential) the
            # slot's new tasks decided before this one
            np.full(n, m * (d + 1) * scenario.size_max),
            np.full(n, m * (d + 1)),
            [m, m],
            np.full(n * h, m),
        ]
    )
    # float32 rounding must not push a value that sits on a bound outside the box
    high = np.nextafter(high.astype(np.float32), np.float32(np.inf))
    return spaces.Box(low=np.zeros(lay.size, dtype=np.float32), high=high, dtype=np.float32)


def feature_scale(scenario: Scenario) -> np.ndarray:
    """Per-feature divisors (float32) that bring typical observations to order one.

    Size by ``size_max``; waits by the deadline; upload rate by its nominal value;
    a server's queued and incoming Mbit by what it computes in one deadline; active
    and incoming counts and the active history by the fair share of devices per
    server; CPU by the fastest server; the slot's arrival and pending counts by the
    mean number of arrivals per slot (at least 1).
    """
    lay = ObsLayout.of(scenario)
    n, h = lay.n_servers, lay.history_len
    d = scenario.deadline
    fair = max(scenario.n_devices / n, 1.0)
    rates = np.asarray(scenario.server_rates())
    fig = scenario.figures()
    mean_size = 0.5 * (scenario.size_min + scenario.size_max)
    per_slot = max(fig["offered_mbit_per_slot"] / mean_size, 1.0)  # mean arrivals per slot
    return np.concatenate(
        [
            [scenario.size_max, d, d, scenario.uplink_rate],
            rates * d,
            np.full(n, fair),
            np.full(n, max(s.ghz for s in scenario.servers)),
            rates * d,
            np.full(n, fair),
            [per_slot, per_slot],
            np.full(n * h, fair),
        ]
    ).astype(np.float32)


class ScaleObservation(gym.ObservationWrapper):
    """Divide the observations of a ``comllm/MEC-v0`` environment by :func:`feature_scale`."""

    def __init__(self, env: gym.Env, scale: np.ndarray | None = None) -> None:
        super().__init__(env)
        base = env.observation_space
        self.scale = np.asarray(feature_scale(env.unwrapped.scenario) if scale is None else scale, dtype=np.float32)
        if self.scale.shape != base.shape:
            raise ValueError(f"scale has shape {self.scale.shape}, observations {base.shape}")
        high = np.nextafter((base.high / self.scale).astype(np.float32), np.float32(np.inf))
        self.observation_space = spaces.Box(low=np.zeros_like(high), high=high, dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return (observation / self.scale).astype(np.float32)
