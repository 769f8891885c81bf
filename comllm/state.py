"""The semantic state a policy sees when a task arrives (DESIGN §2).

Two views of the same facts:

* :class:`TaskState`, one task, plain typed fields: what the text module renders
  and parses;
* :class:`StateBatch`, a struct of numpy arrays over a batch of tasks that share
  one server count: what the cost model, policies and the simulator use.

Units: slots for times, Mbit for data, Mbit/slot for rates, GHz for CPUs,
cycles per bit for computation density, seconds for ``slot_s``.
Actions are integers: 0 = run locally, ``j`` in 1..N = offload to server ``j``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from comllm.scenario import SERVER_TYPE_CODES, SERVER_TYPE_NAMES

LOCAL = 0


@dataclass(frozen=True)
class ServerView:
    """What the policy sees of one edge server."""

    type: str  # one of scenario.SERVER_TYPE_NAMES
    cpu_ghz: float
    cycles_per_bit: float
    active: int  # non-empty device queues at this server now
    queued_mbit: float  # bits still to compute at this server, Mbit
    history: tuple[float, ...]  # active count over the last slots, oldest first


@dataclass(frozen=True)
class TaskState:
    """The state of the MEC system as seen by the device whose task just arrived."""

    task_size: float  # Mbit
    max_delay: int  # slots
    local_wait: float  # slots until the local CPU queue is free
    tx_wait: float  # slots until the uplink queue is free
    upload_rate: float  # Mbit/slot, current
    slot_s: float  # seconds
    drop_penalty: float
    device_ghz: float
    device_cycles_per_bit: float
    device_mbps: float  # nominal uplink, Mbit/s
    servers: tuple[ServerView, ...]
    device: int = -1  # index of the device in its simulator (-1: unknown)
    slot: int = -1  # simulator slot (-1: unknown)

    @property
    def n_servers(self) -> int:
        return len(self.servers)

    @property
    def n_actions(self) -> int:
        return len(self.servers) + 1


@dataclass
class StateBatch:
    """A batch of :class:`TaskState` with one server count N, as arrays.

    Shapes: ``(B,)`` per task, ``(B, N)`` per server, ``(B, N, H)`` for history.
    """

    task_size: np.ndarray
    max_delay: np.ndarray
    local_wait: np.ndarray
    tx_wait: np.ndarray
    upload_rate: np.ndarray
    slot_s: np.ndarray
    drop_penalty: np.ndarray
    device_ghz: np.ndarray
    device_cycles_per_bit: np.ndarray
    device_mbps: np.ndarray
    server_type: np.ndarray  # (B, N) int codes of SERVER_TYPE_NAMES
    server_ghz: np.ndarray  # (B, N)
    server_cycles_per_bit: np.ndarray  # (B, N)
    active: np.ndarray  # (B, N) int
    queued: np.ndarray  # (B, N) Mbit
    history: np.ndarray  # (B, N, H)
    device: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    slot: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        b = len(self.task_size)
        if len(self.device) != b:
            self.device = np.full(b, -1, dtype=np.int64)
        if len(self.slot) != b:
            self.slot = np.full(b, -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.task_size)

    @property
    def n_servers(self) -> int:
        return self.server_ghz.shape[1]

    @property
    def n_actions(self) -> int:
        return self.n_servers + 1

    def subset(self, idx: np.ndarray | slice | Sequence[int]) -> "StateBatch":
        """The tasks at ``idx`` as a new batch."""
        return StateBatch(**{k: v[idx] for k, v in self.__dict__.items()})

    def state(self, i: int) -> TaskState:
        """Task ``i`` as a :class:`TaskState`."""
        servers = tuple(
            ServerView(
                type=SERVER_TYPE_NAMES[int(self.server_type[i, j])],
                cpu_ghz=float(self.server_ghz[i, j]),
                cycles_per_bit=float(self.server_cycles_per_bit[i, j]),
                active=int(self.active[i, j]),
                queued_mbit=float(self.queued[i, j]),
                history=tuple(float(x) for x in self.history[i, j]),
            )
            for j in range(self.n_servers)
        )
        return TaskState(
            task_size=float(self.task_size[i]),
            max_delay=int(self.max_delay[i]),
            local_wait=float(self.local_wait[i]),
            tx_wait=float(self.tx_wait[i]),
            upload_rate=float(self.upload_rate[i]),
            slot_s=float(self.slot_s[i]),
            drop_penalty=float(self.drop_penalty[i]),
            device_ghz=float(self.device_ghz[i]),
            device_cycles_per_bit=float(self.device_cycles_per_bit[i]),
            device_mbps=float(self.device_mbps[i]),
            servers=servers,
            device=int(self.device[i]),
            slot=int(self.slot[i]),
        )

    def states(self) -> list[TaskState]:
        return [self.state(i) for i in range(len(self))]

    @classmethod
    def from_states(cls, states: Iterable[TaskState]) -> "StateBatch":
        """Stack task states that share one server count and history length."""
        states = list(states)
        if not states:
            raise ValueError("StateBatch.from_states needs at least one state")
        n = states[0].n_servers
        if any(s.n_servers != n for s in states):
            raise ValueError("all states of a StateBatch must have the same number of servers")

        def col(name: str, dtype=np.float64) -> np.ndarray:
            return np.array([getattr(s, name) for s in states], dtype=dtype)

        def srv(name: str, dtype=np.float64) -> np.ndarray:
            return np.array([[getattr(v, name) for v in s.servers] for s in states], dtype=dtype).reshape(len(states), n)

        return cls(
            task_size=col("task_size"),
            max_delay=col("max_delay", np.int64),
            local_wait=col("local_wait"),
            tx_wait=col("tx_wait"),
            upload_rate=col("upload_rate"),
            slot_s=col("slot_s"),
            drop_penalty=col("drop_penalty"),
            device_ghz=col("device_ghz"),
            device_cycles_per_bit=col("device_cycles_per_bit"),
            device_mbps=col("device_mbps"),
            server_type=np.array(
                [[SERVER_TYPE_CODES[v.type] for v in s.servers] for s in states], dtype=np.int64
            ).reshape(len(states), n),
            server_ghz=srv("cpu_ghz"),
            server_cycles_per_bit=srv("cycles_per_bit"),
            active=srv("active", np.int64),
            queued=srv("queued_mbit"),
            history=np.array([[v.history for v in s.servers] for s in states], dtype=np.float64).reshape(
                len(states), n, -1
            ),
            device=col("device", np.int64),
            slot=col("slot", np.int64),
        )


def group_by_servers(states: Sequence[TaskState]) -> dict[int, list[int]]:
    """Indices of ``states`` grouped by server count (batches need one N)."""
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(states):
        groups.setdefault(s.n_servers, []).append(i)
    return groups
