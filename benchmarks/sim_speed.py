"""Simulator throughput: device-slots per second under a random policy.

    python benchmarks/sim_speed.py [--slots 20000]

Prints a table for (devices, servers) = (50, 5), (20, 6), (20, 11). Each row
times ``observe()`` (builds the StateBatch of the slot's arrivals), a random
action per arriving task, and ``step()``; numba compilation happens before
timing. Target: >= 1,000,000 device-slots/s at 50 x 5 on a 2-core machine. The
last columns time comllm.sim.reference (plain Python, one object per task) on the
same arrivals, side by side.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from comllm.scenario import load_scenario
from comllm.sim import MECSimulator
from comllm.sim.reference import ReferenceSimulator

CASES = [(50, 5), (20, 6), (20, 11)]


def measure(n_devices: int, n_servers: int, slots: int, repeats: int = 3) -> tuple[float, float]:
    types = ["high-performance", "standard", "energy-saving"]
    servers = [types[i % 3] for i in range(n_servers)]
    sc = load_scenario("paper-6", {"n_devices": n_devices, "servers": servers})
    sim = MECSimulator(sc, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(200):  # compile + warm
        b = sim.observe()
        sim.step(rng.integers(0, n_servers + 1, len(b)))
    best = float("inf")
    for _ in range(repeats):
        sim.reset(1)
        t0 = time.perf_counter()
        for _ in range(slots):
            b = sim.observe()
            sim.step(rng.integers(0, n_servers + 1, len(b)))
        best = min(best, time.perf_counter() - t0)
    return n_devices * slots / best, best / slots * 1e6


def measure_reference(n_devices: int, n_servers: int, slots: int) -> float:
    """The plain-Python reference on the same arrivals (recorded from a compiled run, untimed)."""
    types = ["high-performance", "standard", "energy-saving"]
    sc = load_scenario("paper-6", {"n_devices": n_devices, "servers": [types[i % 3] for i in range(n_servers)]})
    sim = MECSimulator(sc, seed=1)
    rng = np.random.default_rng(0)
    plan = []
    for _ in range(slots):
        b = sim.observe()
        a = rng.integers(0, n_servers + 1, len(b))
        plan.append(([(int(d), float(s), int(x)) for d, s, x in zip(b.device, b.task_size, a)], sim.rate.tolist()))
        sim.step(a)
    ref = ReferenceSimulator(n_devices, sim.local_rate, list(sim.server_rate), sc.deadline)
    t0 = time.perf_counter()
    for t, (arrivals, rates) in enumerate(plan):
        ref.step(t, arrivals, rates)
    return n_devices * slots / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=20_000)
    args = ap.parse_args()
    table = Table(title="simulator throughput (random policy; compiled: best of 3)")
    for col in ("devices", "servers", "device-slots/s", "µs per slot", "pure-Python reference", "speed-up"):
        table.add_column(col, justify="right")
    for m, n in CASES:
        rate, us = measure(m, n, args.slots)
        ref = measure_reference(m, n, max(500, args.slots // 20))
        table.add_row(str(m), str(n), f"{rate:,.0f}", f"{us:.1f}", f"{ref:,.0f}", f"{rate / ref:.0f}×")
    Console().print(table)


if __name__ == "__main__":
    main()
