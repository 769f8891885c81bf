"""Simulator throughput: device-slots per second under a random policy.

    python benchmarks/sim_speed.py [--slots 20000]

Prints a table for (devices, servers) = (50, 5), (20, 6), (20, 11). Each row
times ``observe()`` (builds the StateBatch of the slot's arrivals), a random
action per arriving task, and ``step()``; numba compilation happens before
timing. Target: >= 1,000,000 device-slots/s at 50 x 5 on a 2-core machine. The
middle columns time tests/oracles/reference_simulator.py (plain Python, one object per task) on the
same arrivals, side by side; the last ones the ``sequential`` decision protocol (each
arriving task observed and decided on its own, through ``MECSimulator.decide``).

The row "50 (tang-wong)" is the 50 x 5 case under ``slot_rules: tang-wong``
(comllm.sim.tang_wong); its reference column times the plain-Python restatement
of Tang & Wong's step that the tests check it against (tests/oracles/tang_wong_rules.py).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

import sys
from pathlib import Path

from comllm.scenario import load_scenario
from comllm.sim import MECSimulator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test oracles live beside the package
from tests.oracles.reference_simulator import ReferenceSimulator  # noqa: E402

CASES = [(50, 5), (20, 6), (20, 11)]


def scenario(n_devices: int, n_servers: int, **fields: str):  # noqa: ANN201
    """paper-6's physics with ``n_devices`` devices and ``n_servers`` servers cycling the three types."""
    types = ["high-performance", "standard", "energy-saving"]
    servers = [types[i % 3] for i in range(n_servers)]
    return load_scenario("paper-6", {"n_devices": n_devices, "servers": servers, **fields})


def measure(
    n_devices: int, n_servers: int, slots: int, repeats: int = 3, decisions: str = "simultaneous"
) -> tuple[float, float]:
    """Best of ``repeats``: device-slots/s and µs per slot. ``sequential`` goes through
    ``sim.decide`` (one policy call and one ``observe_turn`` per arriving task)."""
    sc = scenario(n_devices, n_servers, decisions=decisions)
    sim = MECSimulator(sc, seed=0)
    rng = np.random.default_rng(0)

    def act(b):
        return rng.integers(0, n_servers + 1, len(b))

    def one_slot() -> None:
        if decisions == "sequential":
            sim.step(sim.decide(act))
        else:
            sim.step(act(sim.observe()))

    for _ in range(200):  # compile + warm
        one_slot()
    best = float("inf")
    for _ in range(repeats):
        sim.reset(1)
        t0 = time.perf_counter()
        for _ in range(slots):
            one_slot()
        best = min(best, time.perf_counter() - t0)
    return n_devices * slots / best, best / slots * 1e6


def measure_reference(n_devices: int, n_servers: int, slots: int) -> float:
    """The plain-Python reference on the same arrivals (recorded from a compiled run, untimed)."""
    sc = scenario(n_devices, n_servers)
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


def measure_rules(n_devices: int, n_servers: int, slots: int, slot_rules: str, repeats: int = 3) -> tuple[float, float]:
    """:func:`measure` (simultaneous decisions) under the given ``slot_rules``."""
    sc = scenario(n_devices, n_servers, slot_rules=slot_rules)
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


def measure_tang_wong_restatement(n_devices: int, n_servers: int, slots: int) -> float:
    """The tests' plain-Python restatement of Tang & Wong's step on the same arrivals (recorded, untimed)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.oracles
    from tests.oracles.tang_wong_rules import TangWongRules

    sc = scenario(n_devices, n_servers, slot_rules="tang-wong")
    sim = MECSimulator(sc, seed=1)
    rng = np.random.default_rng(0)
    plan = []
    for _ in range(slots):
        b = sim.observe()
        a = rng.integers(0, n_servers + 1, len(b))
        plan.append(([(int(d), float(s), int(x)) for d, s, x in zip(b.device, b.task_size, a)], sim.rate.tolist()))
        sim.step(a)
    ref = TangWongRules(n_devices, sim.local_rate, list(sim.server_rate), sc.deadline)
    t0 = time.perf_counter()
    for t, (arrivals, rates) in enumerate(plan):
        ref.step(t, arrivals, rates)
    return n_devices * slots / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=20_000)
    args = ap.parse_args()
    table = Table(title="simulator throughput (random policy; compiled: best of 3)")
    cols = ("devices", "servers", "device-slots/s", "µs per slot", "pure-Python reference", "speed-up",
            "sequential device-slots/s", "sequential µs per slot")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="right")
    for m, n in CASES:
        rate, us = measure(m, n, args.slots)
        ref = measure_reference(m, n, max(500, args.slots // 20))
        seq, seq_us = measure(m, n, max(1000, args.slots // 4), decisions="sequential")
        table.add_row(
            str(m), str(n), f"{rate:,.0f}", f"{us:.1f}", f"{ref:,.0f}", f"{rate / ref:.0f}×", f"{seq:,.0f}", f"{seq_us:.1f}"
        )
    m, n = CASES[0]  # the same case under Tang & Wong's slot rules
    rate, us = measure_rules(m, n, args.slots, "tang-wong")
    ref = measure_tang_wong_restatement(m, n, max(500, args.slots // 20))
    table.add_row(f"{m} (tang-wong)", str(n), f"{rate:,.0f}", f"{us:.1f}", f"{ref:,.0f}", f"{rate / ref:.0f}×")
    Console().print(table)


if __name__ == "__main__":
    main()
