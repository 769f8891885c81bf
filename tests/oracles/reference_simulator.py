"""A plain-Python, object-per-task implementation of the same slot semantics.

A test oracle, not part of the package: the readable statement of the dynamics that
the compiled kernels (comllm/sim/kernels.py) are tested against, task by task, and
the baseline of ``benchmarks/sim_speed.py``. Arrivals, actions and uplink rates
come from outside (e.g. recorded from a MECSimulator run).
"""

from __future__ import annotations

from dataclasses import dataclass

from comllm.sim import kernels as K


@dataclass
class _Task:
    tid: int
    device: int
    arrival: int
    size: float
    action: int
    rem: float
    stage: int  # STAGE_LOCAL, STAGE_TX, STAGE_SERVER


class ReferenceSimulator:
    """FIFO queues as Python lists: local and uplink per device, one per (server, device)."""

    def __init__(self, n_devices: int, local_rate: float, server_rates: list[float], deadline: int) -> None:
        self.M, self.D = n_devices, deadline
        self.local_rate = local_rate
        self.server_rates = list(server_rates)
        self.local: list[list[_Task]] = [[] for _ in range(n_devices)]
        self.uplink: list[list[_Task]] = [[] for _ in range(n_devices)]
        self.server: list[list[list[_Task]]] = [[[] for _ in range(n_devices)] for _ in server_rates]
        self.outcomes: dict[int, tuple[int, float]] = {}  # tid -> (code, latency)
        self.next_tid = 0

    def step(self, t: int, arrivals: list[tuple[int, float, int]], rates: list[float]) -> None:
        """Run slot ``t``; ``arrivals`` = [(device, size Mbit, action)], ``rates`` Mbit/slot per device."""
        for device, size, action in arrivals:
            task = _Task(self.next_tid, device, t, size, action, size, K.STAGE_LOCAL if action == 0 else K.STAGE_TX)
            self.next_tid += 1
            (self.local if action == 0 else self.uplink)[device].append(task)
        active = [sum(1 for q in queues if q) for queues in self.server]
        joining: list[_Task] = []
        for m in range(self.M):
            self._serve(t, self.local[m], self.local_rate, done=True)
            joining += self._serve(t, self.uplink[m], rates[m], done=False)
            for j, queues in enumerate(self.server):
                if active[j]:
                    self._serve(t, queues[m], self.server_rates[j] / active[j], done=True)
        self._drop(t, joining)
        for task in joining:  # transmitted during slot t: at the server from slot t + 1
            task.stage, task.rem = K.STAGE_SERVER, task.size
            self.server[task.action - 1][task.device].append(task)

    def incoming(self, n_servers: int) -> tuple[list[float], list[int]]:
        """Per server, Mbit still to send and number of the tasks bound for it in devices' uplinks."""
        mbit, count = [0.0] * n_servers, [0] * n_servers
        for queue in self.uplink:
            for task in queue:
                mbit[task.action - 1] += task.rem
                count[task.action - 1] += 1
        return mbit, count

    def _serve(self, t: int, queue: list[_Task], capacity: float, done: bool) -> list[_Task]:
        used, finished = 0.0, []
        while queue and capacity - used > 1e-9:
            task = queue[0]
            serve = min(task.rem, capacity - used)
            used += serve
            task.rem -= serve
            if task.rem > 1e-9:
                break
            queue.pop(0)
            if done:
                self.outcomes[task.tid] = (K.OUT_DONE, t + used / capacity - task.arrival)
            else:
                finished.append(task)
        return finished

    def _drop(self, t: int, joining: list[_Task]) -> None:
        codes = {K.STAGE_LOCAL: K.OUT_DROP_LOCAL_RUN, K.STAGE_TX: K.OUT_DROP_TX_RUN, K.STAGE_SERVER: K.OUT_DROP_SERVER_RUN}
        waiting = {K.STAGE_LOCAL: K.OUT_DROP_LOCAL_WAIT, K.STAGE_TX: K.OUT_DROP_TX_WAIT, K.STAGE_SERVER: K.OUT_DROP_SERVER_WAIT}
        for task in [x for x in joining if x.arrival == t - self.D + 1]:
            self.outcomes[task.tid] = (K.OUT_DROP_TX_RUN, float(self.D))  # sent in its very last slot
            joining.remove(task)
        queues = self.local + self.uplink + [q for per_dev in self.server for q in per_dev]
        for q in queues:
            for task in [x for x in q if x.arrival == t - self.D + 1]:
                started = task.rem < task.size - 1e-9
                self.outcomes[task.tid] = ((codes if started else waiting)[task.stage], float(self.D))
                q.remove(task)
