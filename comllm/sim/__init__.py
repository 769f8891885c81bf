"""The MEC simulator (queues, arrivals, channel) and its compiled kernels."""

from comllm.sim.simulator import MECSimulator, Snapshot, StepResult, TaskLog

__all__ = ["MECSimulator", "Snapshot", "StepResult", "TaskLog"]
