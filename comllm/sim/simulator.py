"""The MEC simulator: the single source of truth for the queueing dynamics.

Typical loop, following the scenario's decision protocol (``decisions``)::

    sim = MECSimulator(load_scenario("paper-6"), seed=0)
    for _ in range(1000):
        sim.step(sim.decide(policy.act))   # the slot's actions by the protocol, then the slot runs
    log = sim.log                          # every task: outcome, latency (slots)

Decision protocols (the scenario field ``decisions``):

* ``simultaneous`` (default): :meth:`MECSimulator.decide` calls the policy once with
  :meth:`MECSimulator.observe`, every arrival of the slot seen from the slot-start state;
* ``sequential``: the slot's arrivals are decided one at a time in the order
  :meth:`MECSimulator.decision_order` (a seeded permutation per slot, drawn from its own
  stream so the arrivals are those of the simultaneous run of the same seed); each call
  gets one task, whose view (:meth:`MECSimulator.observe_turn`) counts the earlier
  decisions of the slot in the servers' incoming traffic. :attr:`MECSimulator.decided`
  holds those decisions while the slot is being decided (the look-ahead planner reads them).

``sim.step(actions)`` applies given actions (device order) whatever the protocol.

The dynamics live in :mod:`comllm.sim.kernels`; this class owns the random
draws (arrivals, sizes, channel, burst phases), the task log and snapshots.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Callable, Generator, Mapping

import numpy as np

from comllm.scenario import SERVER_TYPE_CODES, Scenario, make_scenario
from comllm.sim import kernels as K
from comllm.state import StateBatch


@dataclass
class StepResult:
    """Outcomes of the tasks that ended during one slot."""

    task_id: np.ndarray  # (n,) int
    code: np.ndarray  # (n,) OUT_* codes
    latency: np.ndarray  # (n,) slots; a drop counts the deadline


class TaskLog:
    """Every task that arrived: when, where it ran, how it ended.

    ``code`` is 0 while the task is still in the system, else an ``OUT_*`` code.
    """

    _fields = {
        "arrival": np.int64,
        "device": np.int64,
        "size": np.float64,
        "action": np.int64,
        "code": np.int64,
        "latency": np.float64,
    }

    def __init__(self, capacity: int = 1024) -> None:
        self.n = 0
        self._data = {k: np.zeros(capacity, dtype=t) for k, t in self._fields.items()}

    def __len__(self) -> int:
        return self.n

    def __getattr__(self, name: str) -> np.ndarray:
        data = self.__dict__.get("_data")
        if data is not None and name in data:
            return data[name][: self.n]
        raise AttributeError(name)

    def reserve(self, k: int) -> None:
        """Make room for ``k`` more tasks."""
        while self.n + k > len(self._data["arrival"]):
            for key, arr in self._data.items():
                self._data[key] = np.concatenate([arr, np.zeros_like(arr)])

    def append(self, arrival: int, device: np.ndarray, size: np.ndarray, action: np.ndarray) -> int:
        """Log ``len(device)`` new tasks; returns the id of the first (ids are consecutive)."""
        k = len(device)
        self.reserve(k)
        first = self.n
        sl = slice(first, first + k)
        self._data["arrival"][sl] = arrival
        self._data["device"][sl] = device
        self._data["size"][sl] = size
        self._data["action"][sl] = action
        self.n += k
        return first

    def copy(self) -> "TaskLog":
        new = TaskLog(1)
        new.n = self.n
        new._data = {k: v.copy() for k, v in self._data.items()}
        return new


class MECSimulator:
    """Slotted simulator of M devices offloading to N heterogeneous edge servers.

    Each device has a FIFO local-computation queue and a FIFO uplink queue; each
    server keeps a FIFO queue per device and shares its CPU equally among the
    non-empty ones. See :mod:`comllm.sim.kernels` for the exact slot semantics.
    """

    def __init__(self, scenario: Scenario, seed: int | None = 0) -> None:
        self.scenario = scenario
        sc = scenario
        self.M = sc.n_devices
        self.N = sc.n_servers
        self.D = sc.deadline
        self.H = sc.history_len
        self.local_rate = float(sc.local_rate)
        self.server_rate = np.asarray(sc.server_rates(), dtype=np.float64)
        self._server_type = np.array([SERVER_TYPE_CODES[s.type] for s in sc.servers], dtype=np.int64)
        self._server_ghz = np.array([s.ghz for s in sc.servers], dtype=np.float64)
        M, N = self.M, self.N
        # read-only per-task constants; observe() hands out views of their first n rows
        self._const = {
            "max_delay": np.full(M, self.D, dtype=np.int64),
            "slot_s": np.full(M, sc.slot_s),
            "drop_penalty": np.full(M, sc.drop_penalty),
            "device_ghz": np.full(M, sc.device_ghz),
            "device_cycles_per_bit": np.full(M, sc.cycles_per_bit),
            "device_mbps": np.full(M, sc.uplink_mbps),
            "server_type": np.tile(self._server_type, (M, 1)),
            "server_ghz": np.tile(self._server_ghz, (M, 1)),
            "server_cycles_per_bit": np.full((M, N), sc.cycles_per_bit),
            "slot": np.zeros(M, dtype=np.int64),
        }
        for arr in self._const.values():
            arr.flags.writeable = False
        if sc.slot_rules == "tang-wong":
            from comllm.sim import tang_wong

            self._step_kernel = tang_wong.step_simulator
            self._observe_kernel = tang_wong.observe_system_tw  # whole-slot waits

            def fresh(t, arr, rem, act, stage, rate, lr, lw, tw, q, a, inc, inc_n):  # type: ignore[no-untyped-def]
                tang_wong.observe_system_tw(t, arr, rem, act, stage, rate, lr, lw, tw, q, a)
                K.observe_incoming(arr, rem, act, stage, inc, inc_n)

            self._fresh_kernel = fresh
        else:
            self._step_kernel = K.step_simulator
            self._observe_kernel = K.observe_system
            self._fresh_kernel = K.observe_fresh
        self._counts: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # n -> (n repeated, n - 1 repeated), read-only
        self._lw = np.empty(M)
        self._tw = np.empty(M)
        self._q = np.empty(N)
        self._a = np.empty(N, dtype=np.int64)
        self._inc = np.empty(N)
        self._inc_n = np.empty(N, dtype=np.int64)
        self.sequential = sc.decisions == "sequential"
        self.decided: dict[int, int] = {}
        self.reset(seed)

    # ------------------------------------------------------------------ state
    def reset(self, seed: int | None = None) -> None:
        """Empty queues, slot 0, fresh random stream; draws slot 0's arrivals."""
        M, N, D = self.M, self.N, self.D
        self.rng = np.random.default_rng(seed)
        # the decision order's own stream (sequential protocol): the arrivals do not depend on it
        self._order_seed = int(np.random.SeedSequence(seed).generate_state(1, dtype=np.uint32)[0])
        self._refill()
        self.t = 0
        self.arr = np.full((M, D), -1, dtype=np.int64)
        self.size = np.zeros((M, D))
        self.rem = np.zeros((M, D))
        self.act = np.zeros((M, D), dtype=np.int64)
        self.stage = np.zeros((M, D), dtype=np.int64)
        self.tid = np.full((M, D), -1, dtype=np.int64)
        self.history = np.zeros((N, self.H))  # active counts, oldest first
        self.served = np.zeros(N)  # Mbit computed by each server so far
        self.busy_slots = np.zeros(N)  # slots each server had an active queue
        self.chan = np.ones(M)  # gauss-markov factor, or rayleigh |h| real part
        self.chan_im = np.zeros(M)
        if self.scenario.channel.model == "rayleigh":
            self.chan = np.full(M, np.sqrt(0.5))
            self.chan_im = np.full(M, np.sqrt(0.5))
        self.phase = np.zeros(M, dtype=bool)  # bursty: in a burst
        self.log = TaskLog()
        self._args_channel = self._channel_args()
        self.rate = np.empty(M)
        K.channel_rates(self._args_channel[0], self.chan, self.chan_im, *self._args_channel[3:], self.rate)
        self.new_mask = np.zeros(M, dtype=bool)
        self.new_size = np.zeros(M)
        self._out_code = np.zeros(M * D, dtype=np.int64)
        self._out_lat = np.zeros(M * D)
        self._out_tid = np.zeros(M * D, dtype=np.int64)
        self._out_act = np.zeros(M * D, dtype=np.int64)
        self._advance_inputs(*self._next_randoms())

    # Random numbers are drawn in blocks of _BLOCK slots (one numpy call instead of
    # several per slot); a snapshot keeps the generator state at the block's start
    # and the offset into it, so restoring redraws the very same block.
    _BLOCK = 64

    def _refill(self) -> None:
        self._block_state = copy.deepcopy(self.rng.bit_generator.state)
        self._u = self.rng.random((self._BLOCK, 3, self.M))  # arrival, size, burst phase
        self._z = self.rng.standard_normal((self._BLOCK, 2, self.M))  # channel innovations
        self._bi = 0

    def _next_randoms(self) -> tuple[np.ndarray, np.ndarray]:
        if self._bi == self._BLOCK:
            self._refill()
        i = self._bi
        self._bi += 1
        return self._u[i], self._z[i]

    def _channel_args(self) -> tuple:
        ch = self.scenario.channel
        model = {"static": K.CHANNEL_STATIC, "gauss-markov": K.CHANNEL_GAUSS_MARKOV, "rayleigh": K.CHANNEL_RAYLEIGH}
        return (
            model[ch.model], ch.rho, ch.sigma, 10 ** (ch.snr_db / 10), ch.min_factor, ch.max_factor,
            self.scenario.uplink_rate,
        )  # fmt: skip

    def _advance_inputs(self, u: np.ndarray, z: np.ndarray) -> None:
        """Evolve the channel and burst phases, draw the next slot's arrivals."""
        sc = self.scenario
        b = sc.bursty
        K.next_slot_inputs(
            u, z, *self._args_channel, self.chan, self.chan_im, self.rate,
            b is not None, sc.arrival_prob, b.burst_prob if b else 0.0, b.p_enter if b else 0.0,
            b.p_leave if b else 0.0, sc.size_min, sc.size_max, self.phase, self.new_mask, self.new_size,
        )  # fmt: skip
        self._arrivals = np.flatnonzero(self.new_mask)
        self._obs: StateBatch | None = None
        self._order: np.ndarray | None = None

    # ------------------------------------------------------------ the policy
    @property
    def arrivals(self) -> np.ndarray:
        """Devices with a task arriving in the current slot."""
        return self._arrivals

    def set_arrivals(self, devices: list[int] | np.ndarray, sizes: list[float] | np.ndarray) -> None:
        """Replace this slot's random arrivals by given tasks (Mbit): scripted scenarios and tests."""
        devices = np.asarray(devices, dtype=np.int64)
        sizes = np.asarray(sizes, dtype=np.float64)
        if len(devices) != len(sizes):
            raise ValueError(f"set_arrivals got {len(devices)} devices and {len(sizes)} sizes")
        if len(devices) and (devices.min() < 0 or devices.max() >= self.M or len(set(devices.tolist())) < len(devices)):
            raise ValueError(f"devices {devices.tolist()} must be distinct indices in 0..{self.M - 1}")
        if (sizes <= 0).any():
            raise ValueError(f"task sizes {sizes.tolist()} must be positive (Mbit)")
        self.new_mask[:] = False
        self.new_mask[devices] = True
        self.new_size[devices] = sizes
        self._arrivals = np.flatnonzero(self.new_mask)
        self._obs = None
        self._order = None

    def queue_view(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per device local and uplink wait (slots), per server queued Mbit and active count."""
        lw, tw, q, a = self._lw, self._tw, self._q, self._a
        self._observe_kernel(self.t, self.arr, self.rem, self.act, self.stage, self.rate, self.local_rate, lw, tw, q, a)
        return lw, tw, q, a

    def incoming_view(self) -> tuple[np.ndarray, np.ndarray]:
        """Per server, Mbit still to send and number of tasks bound for it in devices' uplinks."""
        K.observe_incoming(self.arr, self.rem, self.act, self.stage, self._inc, self._inc_n)
        return self._inc, self._inc_n

    def observe(self) -> StateBatch:
        """The states of this slot's arriving tasks (in device order), seen from the slot's start.

        This is the ``simultaneous`` view: no task sees another's decision, so each one's
        ``slot_pending`` is the slot's other arrivals. Under ``sequential``, use
        :meth:`decide` or :meth:`observe_turn`.
        """
        if self._obs is not None:
            return self._obs
        dev = self._arrivals
        n = len(dev)
        lw, tw, q, a, inc, inc_n = self._lw, self._tw, self._q, self._a, self._inc, self._inc_n
        self._fresh_kernel(
            self.t, self.arr, self.rem, self.act, self.stage, self.rate, self.local_rate, lw, tw, q, a, inc, inc_n
        )
        counts = self._counts.get(n)
        if counts is None:
            counts = (np.full(n, n, dtype=np.int64), np.full(n, max(n - 1, 0), dtype=np.int64))
            for x in counts:
                x.flags.writeable = False
            self._counts[n] = counts
        c = self._const
        self._obs = StateBatch.from_arrays(dict(
            task_size=self.new_size[dev],
            max_delay=c["max_delay"][:n],
            local_wait=lw[dev],
            tx_wait=tw[dev],
            upload_rate=self.rate[dev],
            slot_s=c["slot_s"][:n],
            drop_penalty=c["drop_penalty"][:n],
            device_ghz=c["device_ghz"][:n],
            device_cycles_per_bit=c["device_cycles_per_bit"][:n],
            device_mbps=c["device_mbps"][:n],
            server_type=c["server_type"][:n],
            server_ghz=c["server_ghz"][:n],
            server_cycles_per_bit=c["server_cycles_per_bit"][:n],
            active=a[None].repeat(n, 0),
            queued=q[None].repeat(n, 0),
            history=self.history[None].repeat(n, 0),
            incoming=inc[None].repeat(n, 0),
            incoming_n=inc_n[None].repeat(n, 0),
            device=dev,
            slot=c["slot"][:n] + self.t,
            slot_arrivals=counts[0],
            slot_pending=counts[1],
        ))  # fmt: skip
        return self._obs

    def decision_order(self) -> np.ndarray:
        """Positions in :attr:`arrivals` in the order the slot's tasks are decided.

        ``simultaneous``: ``0 .. n-1`` (one batch); ``sequential``: a permutation drawn per
        slot from ``default_rng([order_seed, t])`` (``order_seed`` comes from the simulator's
        seed and is kept in snapshots), independent of the arrival stream.
        """
        if self._order is None:
            n = len(self._arrivals)
            if self.sequential and n > 1:
                self._order = np.random.default_rng([self._order_seed, self.t]).permutation(n)
            else:
                self._order = np.arange(n)
        return self._order

    def observe_turn(self, i: int, actions: np.ndarray) -> StateBatch:
        """The state of the ``i``-th task in :meth:`decision_order`, seeing the earlier decisions.

        ``actions`` (one per arrival, device order) holds the decisions of the tasks at
        ``decision_order()[:i]``; each one bound for server ``j`` adds its whole size to
        ``incoming[j]`` and one to ``incoming_n[j]``; ``slot_pending`` is the number of tasks
        decided after this one. A batch of one task.
        """
        order = self.decision_order()
        earlier = order[:i]
        return self._seen_after(int(order[i]), earlier, np.asarray(actions, dtype=np.int64)[earlier])

    def observe_after(self, device: int, decided: Mapping[int, int]) -> StateBatch:
        """The state of ``device``'s task, one arriving this slot, once the slot's tasks of
        ``decided`` (device -> action) were decided: the view of :meth:`observe_turn` for any
        set of earlier decisions (a sequential record's ``slot_decisions``). A batch of one task."""
        where = {int(d): p for p, d in enumerate(self._arrivals)}
        if int(device) not in where:
            raise ValueError(f"device {device} has no task arriving in slot {self.t}")
        for d in decided:
            if int(d) not in where or int(d) == int(device):
                raise ValueError(f"decided device {d} has no other task arriving in slot {self.t}")
        earlier = np.array([where[int(d)] for d in decided], dtype=np.int64)
        acts = np.array([int(a) for a in decided.values()], dtype=np.int64)
        return self._seen_after(where[int(device)], earlier, acts)

    def _seen_after(self, pos: int, earlier: np.ndarray, acts: np.ndarray) -> StateBatch:
        """The task at position ``pos`` of :attr:`arrivals` seeing the tasks at ``earlier`` decided
        as ``acts``: each one bound for server ``j`` adds its size to ``incoming[j]`` and one to
        ``incoming_n[j]``; ``slot_pending`` counts the slot's tasks not decided yet."""
        one = self.observe().subset([pos])
        sent = acts > 0
        if sent.any():
            sizes = self.new_size[self._arrivals[earlier]]
            one.incoming = one.incoming.copy()
            one.incoming_n = one.incoming_n.copy()
            np.add.at(one.incoming[0], acts[sent] - 1, sizes[sent])
            np.add.at(one.incoming_n[0], acts[sent] - 1, 1)
        one.slot_pending = np.array([len(self._arrivals) - 1 - len(earlier)], dtype=np.int64)
        return one

    def decide(self, act: Callable[[StateBatch], Any]) -> np.ndarray:
        """The actions of this slot's arrivals (device order), asked of ``act`` by the protocol.

        ``simultaneous``: one call with :meth:`observe`; ``sequential``: one call per task
        with :meth:`observe_turn`, in :meth:`decision_order`. :attr:`decided` maps the
        devices decided so far in this slot to their actions while it runs (cleared on return).
        """
        turns = self.decisions()
        try:
            batch = next(turns)
            while True:
                batch = turns.send(act(batch))
        except StopIteration as done:
            return done.value

    def decisions(self) -> Generator[StateBatch, Any, np.ndarray]:
        """:meth:`decide` as a generator: it yields each batch to decide, is sent its actions,
        and returns the slot's actions (device order). What several episodes run in lockstep use
        (one policy call for all of them: :func:`comllm.evaluate.closed_loop.run_episodes`)."""
        n = len(self._arrivals)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if not self.sequential:
            return np.asarray((yield self.observe()), dtype=np.int64).reshape(-1)
        actions = np.zeros(n, dtype=np.int64)
        self.decided = {}
        try:
            for i, pos in enumerate(self.decision_order().tolist()):
                a = np.asarray((yield self.observe_turn(i, actions)), dtype=np.int64).reshape(-1)
                if len(a) != 1:
                    raise ValueError(f"a policy returned {len(a)} actions for one task (sequential decisions)")
                actions[pos] = a[0]
                self.decided[int(self._arrivals[pos])] = int(a[0])
        finally:
            self.decided = {}
        return actions

    def step(self, actions: np.ndarray | list[int]) -> StepResult:
        """Apply one action per arriving task (device order) and run the slot."""
        dev = self._arrivals
        actions = np.asarray(actions, dtype=np.int64).reshape(-1)
        if len(actions) != len(dev):
            raise ValueError(f"step() got {len(actions)} actions for {len(dev)} arriving tasks")
        first = self.log.n
        self.log.reserve(len(dev))
        n = self._step_kernel(
            self.t, self.arr, self.size, self.rem, self.act, self.stage, self.tid,
            dev, self.new_size, actions, first,
            self.rate, self.local_rate, self.server_rate,
            self.history, self.busy_slots, self.served,
            self.log._data["code"], self.log._data["latency"],
            self._out_code, self._out_lat, self._out_tid, self._out_act,
        )  # fmt: skip
        if n < 0:
            raise ValueError(f"action {actions[-1 - n]} is not in 0..{self.N} (0 = local, j = server j)")
        self.log.append(self.t, dev, self.new_size[dev], actions)
        self.t += 1
        self._advance_inputs(*self._next_randoms())
        return StepResult(
            task_id=self._out_tid[:n].copy(), code=self._out_code[:n].copy(), latency=self._out_lat[:n].copy()
        )

    def run(self, policy, slots: int) -> None:
        """Run ``slots`` slots under ``policy`` (anything with ``act(StateBatch) -> actions``)."""
        for _ in range(slots):
            self.step(self.decide(policy.act))

    # -------------------------------------------------------------- snapshots
    def snapshot(self) -> "Snapshot":
        """Everything needed to continue from this moment (queues, channel, random stream)."""
        return Snapshot(
            scenario=self.scenario,
            t=self.t,
            arrays={
                "arr": self.arr.copy(),
                "size": self.size.copy(),
                "rem": self.rem.copy(),
                "act": self.act.copy(),
                "stage": self.stage.copy(),
                "tid": self.tid.copy(),
                "history": self.history.copy(),
                "served": self.served.copy(),
                "busy_slots": self.busy_slots.copy(),
                "chan": self.chan.copy(),
                "chan_im": self.chan_im.copy(),
                "phase": self.phase.copy(),
                "rate": self.rate.copy(),
                "new_mask": self.new_mask.copy(),
                "new_size": self.new_size.copy(),
            },
            rng_state={"block_start": copy.deepcopy(self._block_state), "offset": self._bi, "order_seed": self._order_seed},
            log=self.log.copy(),
        )

    def restore(self, snap: "Snapshot") -> None:
        """Return to a snapshot taken from a simulator of the same scenario."""
        if snap.scenario != self.scenario:
            raise ValueError("snapshot was taken from another scenario")
        self.t = snap.t
        for k, v in snap.arrays.items():
            setattr(self, k, v.copy())
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = copy.deepcopy(snap.rng_state["block_start"])
        self._refill()
        self._bi = int(snap.rng_state["offset"])
        self._order_seed = int(snap.rng_state.get("order_seed", 0))  # (snapshots from before the protocol: 0)
        self.log = snap.log.copy() if snap.log is not None else TaskLog()
        self._arrivals = np.flatnonzero(self.new_mask)
        self._obs = None
        self._order = None

    @classmethod
    def from_snapshot(cls, snap: "Snapshot") -> "MECSimulator":
        sim = cls(snap.scenario, seed=0)
        sim.restore(snap)
        return sim


@dataclass
class Snapshot:
    """A moment of a simulator. ``to_dict``/``from_dict`` give a JSON-safe form.

    The JSON form keeps the live tasks only (not the task log): enough to
    re-simulate the future from this moment.
    """

    scenario: Scenario
    t: int
    arrays: dict[str, np.ndarray]
    rng_state: dict[str, Any]
    log: TaskLog | None = None

    def to_dict(self) -> dict[str, Any]:
        a = self.arrays
        live = np.argwhere(a["arr"] >= 0)
        tasks = [
            [
                int(m),
                int(a["arr"][m, k]),
                round(float(a["size"][m, k]), 9),
                round(float(a["rem"][m, k]), 9),
                int(a["act"][m, k]),
                int(a["stage"][m, k]),
            ]
            for m, k in live
        ]
        return {
            "scenario": self.scenario.model_dump(mode="json"),
            "t": self.t,
            "tasks": tasks,
            "history": a["history"].tolist(),
            "chan": a["chan"].tolist(),
            "chan_im": a["chan_im"].tolist(),
            "phase": a["phase"].astype(int).tolist(),
            "rate": a["rate"].tolist(),
            "new_mask": a["new_mask"].astype(int).tolist(),
            "new_size": a["new_size"].tolist(),
            "rng": json.loads(json.dumps(self.rng_state)),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Snapshot":
        sc = make_scenario(d["scenario"])
        M, N, D = sc.n_devices, sc.n_servers, sc.deadline
        arr = np.full((M, D), -1, dtype=np.int64)
        size = np.zeros((M, D))
        rem = np.zeros((M, D))
        act = np.zeros((M, D), dtype=np.int64)
        stage = np.zeros((M, D), dtype=np.int64)
        for m, ta, s, r, ac, st in d["tasks"]:
            k = ta % D
            arr[m, k], size[m, k], rem[m, k], act[m, k], stage[m, k] = ta, s, r, ac, st
        arrays = {
            "arr": arr,
            "size": size,
            "rem": rem,
            "act": act,
            "stage": stage,
            "tid": np.full((M, D), -1, dtype=np.int64),
            "history": np.asarray(d["history"], dtype=np.float64).reshape(N, sc.history_len),
            "served": np.zeros(N),
            "busy_slots": np.zeros(N),
            "chan": np.asarray(d["chan"], dtype=np.float64),
            "chan_im": np.asarray(d["chan_im"], dtype=np.float64),
            "phase": np.asarray(d["phase"], dtype=bool),
            "rate": np.asarray(d["rate"], dtype=np.float64),
            "new_mask": np.asarray(d["new_mask"], dtype=bool),
            "new_size": np.asarray(d["new_size"], dtype=np.float64),
        }
        return cls(scenario=sc, t=int(d["t"]), arrays=arrays, rng_state=d["rng"], log=None)
