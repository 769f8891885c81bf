"""LACS reward throughput: rewards per second of the simulated look-ahead and of the reference estimator.

    python benchmarks/lacs_speed.py [--states 256] [--horizon 5] [--rollouts 16]

One reward = the score of one candidate action of one state. The states are the same
for every row: ``--states`` decision moments of ``paper-6`` (30 devices, 6 servers, so
7 candidates each) taken under the greedy oracle after a 200-slot warm-up. Rows:

* ``sim``: :func:`comllm.lacs.lacs_evaluate_batch` (rollouts on the simulator's
  kernels, every candidate, H slots, K rollouts), with 1 thread and with all of numba's
  threads; the time includes drawing the random numbers;
* ``reference``: :func:`comllm.lacs.reference_scores_batch` on the states' StateBatch
  (vectorised over the batch), and one state per call.

Compilation happens before timing; each row is the best of ``--repeats``.
Target: ``sim`` >= 15,000 rewards/s on the 2-core machine (not met yet: README, LACS section).
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np
from rich.console import Console
from rich.table import Table

from comllm.lacs import LacsSettings, lacs_evaluate_batch, reference_scores_batch
from comllm.lacs.lookahead import rollout_draws
from comllm.policies.heuristics import GreedyPolicy
from comllm.scenario import load_scenario
from comllm.sim import MECSimulator
from comllm.state import StateBatch


def moments(n: int, seed: int = 0):
    """``n`` (snapshot, device, state row) decision moments of paper-6 under the greedy oracle."""
    sim = MECSimulator(load_scenario("paper-6"), seed=seed)
    greedy = GreedyPolicy()
    out = []
    t = 0
    while len(out) < n:
        batch = sim.observe()
        if t >= 200 and len(batch):
            i = t % len(batch)
            out.append((sim.snapshot(), int(batch.device[i]), batch.subset([i])))
        sim.step(greedy.act(batch))
        t += 1
    return out


def best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=256)
    ap.add_argument("--horizon", type=int, default=5)
    ap.add_argument("--rollouts", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    ms = moments(args.states)
    snaps = [m[0] for m in ms]
    devs = [m[1] for m in ms]
    rows = [m[2] for m in ms]
    batch = StateBatch(**{k: np.concatenate([getattr(r, k) for r in rows]) for k in rows[0].__dict__})
    n_rewards = len(ms) * batch.n_actions
    settings = LacsSettings(horizon=args.horizon, rollouts=args.rollouts)
    lacs_evaluate_batch(snaps[:2], devs[:2], settings)  # compile
    reference_scores_batch(batch.subset([0]))

    table = Table(title=f"LACS rewards/s on {len(ms)} paper-6 states x {batch.n_actions} candidates (best of {args.repeats})")
    for col in ("estimator", "settings", "threads", "rewards/s", "µs per state", "slots per rollout"):
        table.add_column(col, justify="left" if col in ("estimator", "settings") else "right")

    n_threads = numba.config.NUMBA_NUM_THREADS
    for threads in sorted({1, n_threads}):
        numba.set_num_threads(threads)
        res: list = []
        dt = best_of(args.repeats, lambda: res.__setitem__(slice(None), lacs_evaluate_batch(snaps, devs, settings)))
        slots = np.mean([r.slots for r in res])
        table.add_row(
            "sim", f"H={args.horizon}, K={args.rollouts}", str(threads), f"{n_rewards / dt:,.0f}",
            f"{dt / len(ms) * 1e6:,.0f}", f"{slots:.1f}",
        )  # fmt: skip
    numba.set_num_threads(n_threads)
    dt = best_of(args.repeats, lambda: reference_scores_batch(batch))
    table.add_row("reference", "3 futures, batched", "1", f"{n_rewards / dt:,.0f}", f"{dt / len(ms) * 1e6:,.1f}", "–")
    dt = best_of(args.repeats, lambda: [reference_scores_batch(r) for r in rows])
    table.add_row("reference", "3 futures, 1 state/call", "1", f"{n_rewards / dt:,.0f}",
                  f"{dt / len(ms) * 1e6:,.1f}", "–")  # fmt: skip
    console = Console(width=max(Console().width, 100))
    console.print(table)
    # what part of the sim rows is spent drawing the random numbers (numpy) rather than simulating
    keys = [(settings.seed, s.t, d) for s, d in zip(snaps, devs)]
    n_slots = args.horizon + snaps[0].scenario.deadline
    dt = best_of(args.repeats, lambda: rollout_draws(snaps[0].scenario, keys, args.rollouts, n_slots, "greedy"))
    console.print(f"of which random draws: {dt / len(ms) * 1e6:,.0f} µs per state")


if __name__ == "__main__":
    main()
