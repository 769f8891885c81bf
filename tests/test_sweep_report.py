import json

import numpy as np
import pytest

from comllm.experiments.sweep import Job, aggregate, run_sweep
from comllm.report import plots
from comllm.report.tables import markdown, to_csv, write_tables


def jobs():
    return [
        Job(policy=p, scenario="small", seed=s, slots=80, warmup=20, overrides=(f"arrival_prob={q}",), keep_latencies=True)
        for p in ("greedy", "random")
        for q in (0.2, 0.5)
        for s in (0, 1)
    ]


def test_parallel_sweep_equals_serial_and_aggregates_over_seeds():
    serial = run_sweep(jobs(), workers=1)
    parallel = run_sweep(jobs(), workers=2)
    assert [r.metrics["avg_latency"] for r in serial] == [r.metrics["avg_latency"] for r in parallel]
    rows = aggregate(parallel)
    assert len(rows) == 4 and all(r["seeds"] == [0, 1] for r in rows)
    g = next(r for r in rows if r["policy"] == "greedy" and r["overrides"] == ["arrival_prob=0.5"])
    eps = [r.metrics for r in serial if r.job.policy == "greedy" and r.job.overrides == ("arrival_prob=0.5",)]
    assert g["avg_latency"] == pytest.approx(np.mean([e["avg_latency"] for e in eps]))
    json.dumps(rows, allow_nan=False)


def test_tables_and_plots(tmp_path):
    results = run_sweep(jobs(), workers=1)
    rows = aggregate(results)
    md = markdown(rows)
    assert md.count("\n") == len(rows) + 2 and "greedy" in md
    assert to_csv(rows).splitlines()[0].startswith("policy,")
    paths = write_tables(rows, tmp_path, "closed_loop", title="t")
    assert all(p.stat().st_size > 0 for p in paths)
    lat = {r.job.policy: r.metrics["latencies"] for r in results if r.job.seed == 0}
    made = [
        plots.load_sweep(rows, tmp_path / "load.png", "small"),
        plots.latency_cdf(lat, tmp_path / "cdf.png", "small"),
        plots.server_share(rows, tmp_path / "share.png", "small"),
        plots.training_curves({"sft": {"step": [1, 2, 3], "loss": [3.0, 2.0, 1.5]}}, tmp_path / "train.png"),
        plots.zero_shot([{"policy": "llm", "n_servers": n, "perf_ratio": 1 - n / 100} for n in (3, 6, 11)], tmp_path / "zs.png"),
        plots.robustness(
            [{"policy": "llm", "perturbation": p, "accuracy": 0.9, "perf_ratio": 0.99, "invalid_rate": 0.0} for p in ("none", "units")],
            tmp_path / "rob.png",
        ),
    ]
    for p in made:
        assert p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000
