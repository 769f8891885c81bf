"""Tang & Wong's MEC environment step, restated in plain Python (written for this test suite).

The environment of Tang & Wong's task-offloading paper (IEEE TMC 2020) keeps, per
device, a local CPU and an uplink, and per (device, server) pair a share of that
server's CPU. Each of these is a FIFO *queue* feeding one *processor* that holds
at most one task. One slot ``t``, in the order their step runs it:

1. each arrival of the slot joins its device's local queue (action 0) or uplink
   queue (action j: bound for server j);
2. local CPUs: an idle processor *pulls* from its queue at the slot's start: a
   task whose deadline has passed (``t - arrival + 1 > D``) is dropped as it is
   pulled, the first one still within it starts. The task on the processor gets
   ``local_rate`` Mbit; if that finishes it, it completes in slot ``t`` (delay
   ``t - arrival + 1`` slots) and the rest of the slot's capacity is unused;
   otherwise, if ``t`` is its deadline slot, it is dropped;
3. servers: the same for each (device, server) processor, whose capacity is
   ``server_rate[j] / active[j]``, ``active[j]`` being the number of that server's
   device queues that held a task (waiting or on the processor) at the end of
   the previous slot;
4. uplinks: the same with capacity ``rate[m]``; a task whose last bit leaves
   joins the queue of its (device, server) pair, *even in its deadline slot*
   (it is dropped when pulled next slot, but counts in that slot's ``active``);
5. ``active`` is counted for the next slot.

A drop counts ``D`` slots. Three switches turn their three rules into comllm's
fluid ones (the README's slot-rules section), so that the same restatement is
checked against both kernels:

* ``whole_slots`` (rule a): delay ``t - arrival + 1``; off: ``t + phi - arrival``,
  ``phi`` the fraction of the slot's capacity used up when the task finishes;
* ``start_at_boundary`` (rule b): one task per processor per slot; off: when a
  task finishes, the processor pulls the next at once and passes it the rest of
  the slot's capacity;
* ``late_upload_to_server`` (rule c): off: a task whose upload ends in its
  deadline slot is dropped at the uplink.

Outcome codes are comllm's (``comllm.sim.kernels.OUT_*``): dropped when pulled =
``*_WAIT``, dropped on the processor = ``*_RUN``. A task is finished when at most
1e-9 Mbit is left (comllm's tolerance).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from comllm.sim import kernels as K

EPS = 1e-9

LOCAL, UPLINK, SERVER = "local", "uplink", "server"
_WAIT = {LOCAL: K.OUT_DROP_LOCAL_WAIT, UPLINK: K.OUT_DROP_TX_WAIT, SERVER: K.OUT_DROP_SERVER_WAIT}
_RUN = {LOCAL: K.OUT_DROP_LOCAL_RUN, UPLINK: K.OUT_DROP_TX_RUN, SERVER: K.OUT_DROP_SERVER_RUN}


@dataclass
class Task:
    tid: int
    device: int
    arrival: int
    size: float
    action: int  # 0 local, j server j
    remain: float = 0.0


class Processor:
    """A FIFO queue and the one task it is working on."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.queue: deque[Task] = deque()
        self.task: Task | None = None

    def holds_task(self) -> bool:
        return self.task is not None or bool(self.queue)


class TangWongRules:
    """Their step on given arrivals, actions and uplink rates; ``outcomes[tid] = (code, delay)``."""

    def __init__(
        self,
        n_devices: int,
        local_rate: float,
        server_rates: list[float],
        deadline: int,
        whole_slots: bool = True,
        start_at_boundary: bool = True,
        late_upload_to_server: bool = True,
    ) -> None:
        self.M, self.N, self.D = n_devices, len(server_rates), deadline
        self.local_rate = local_rate
        self.server_rates = list(server_rates)
        self.whole_slots = whole_slots
        self.start_at_boundary = start_at_boundary
        self.late_upload_to_server = late_upload_to_server
        self.local = [Processor(LOCAL) for _ in range(n_devices)]
        self.uplink = [Processor(UPLINK) for _ in range(n_devices)]
        self.server = [[Processor(SERVER) for _ in server_rates] for _ in range(n_devices)]
        self.active = [0] * self.N  # counted at the end of the previous slot
        self.active_log: list[list[int]] = []  # each slot's active counts
        self.served = [0.0] * self.N  # Mbit each server computed
        self.outcomes: dict[int, tuple[int, float]] = {}
        self.next_tid = 0

    def step(self, t: int, arrivals: list[tuple[int, float, int]], rates: list[float]) -> None:
        """Run slot ``t``; ``arrivals`` = [(device, size Mbit, action)], ``rates`` uplink Mbit/slot per device."""
        for device, size, action in arrivals:  # 1. arrivals join their first queue
            task = Task(self.next_tid, device, t, size, action, size)
            self.next_tid += 1
            (self.local if action == 0 else self.uplink)[device].queue.append(task)
        self.active_log.append(list(self.active))
        for m in range(self.M):  # 2. local CPUs
            self._run(t, self.local[m], self.local_rate)
        for m in range(self.M):  # 3. servers, each sharing its CPU among last slot's active queues
            for j in range(self.N):
                if self.active[j] > 0:
                    self.served[j] += self._run(t, self.server[m][j], self.server_rates[j] / self.active[j])
        for m in range(self.M):  # 4. uplinks
            for task in self._finished_uploads(t, self.uplink[m], rates[m]):
                late = t - task.arrival + 1 == self.D
                if late and not self.late_upload_to_server:
                    self.outcomes[task.tid] = (K.OUT_DROP_TX_RUN, float(self.D))
                else:
                    task.remain = task.size
                    self.server[m][task.action - 1].queue.append(task)
        self.active = [sum(self.server[m][j].holds_task() for m in range(self.M)) for j in range(self.N)]  # 5.

    # ------------------------------------------------------------------ a processor's slot
    def _pull(self, t: int, proc: Processor) -> bool:
        """Put the first task still within its deadline on the idle processor, dropping the expired ones."""
        while proc.queue:
            task = proc.queue.popleft()
            if t - task.arrival + 1 <= self.D:
                proc.task = task
                return True
            self.outcomes[task.tid] = (_WAIT[proc.kind], float(self.D))
        return False

    def _serve(self, t: int, proc: Processor, capacity: float) -> tuple[float, list[Task]]:
        """One slot of work; returns the Mbit used and the tasks it finished (in order)."""
        used, finished = 0.0, []
        while True:
            if proc.task is None:
                if self.start_at_boundary and (used > 0 or finished):
                    break  # rule b: the next task starts at the next slot boundary
                if capacity - used <= EPS or not self._pull(t, proc):
                    break
            task = proc.task
            if capacity - used <= EPS:
                break
            work = min(task.remain, capacity - used)
            used += work
            task.remain -= work
            if task.remain > EPS:
                break
            proc.task = None
            finished.append((task, used / capacity))
        task = proc.task
        if task is not None and t - task.arrival + 1 == self.D:  # unfinished at the end of its deadline slot
            self.outcomes[task.tid] = (_RUN[proc.kind], float(self.D))
            proc.task = None
        return used, finished

    def _delay(self, t: int, task: Task, phi: float) -> float:
        return float(t - task.arrival + 1) if self.whole_slots else t + phi - task.arrival

    def _run(self, t: int, proc: Processor, capacity: float) -> float:
        used, finished = self._serve(t, proc, capacity)
        for task, phi in finished:
            self.outcomes[task.tid] = (K.OUT_DONE, self._delay(t, task, phi))
        return used

    def _finished_uploads(self, t: int, proc: Processor, rate: float) -> list[Task]:
        return [task for task, _ in self._serve(t, proc, rate)[1]]
