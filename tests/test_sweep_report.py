import json

import numpy as np
import pytest

from comllm.evaluate.metrics import ROW_KEYS
from comllm.experiments.grid import axis_label, check_jobs, job_grid
from comllm.experiments.sweep import Job, aggregate, run_sweep
from comllm.report import plots
from comllm.report.tables import COLUMNS, markdown, rich_table, to_csv, write_tables
from comllm.scenario import load_scenario


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


def test_aggregated_rows_have_the_shared_keys_and_sums():
    results = run_sweep(jobs()[:2], workers=1)
    (row,) = aggregate(results)
    assert tuple(row) == ROW_KEYS
    assert row["n_servers"] == load_scenario("small").n_servers and row["warmup"] == 20 and row["slots"] == 80
    assert row["n_tasks"] == sum(r.metrics["n_tasks"] for r in results)
    assert row["wall_s"] == pytest.approx(sum(r.wall_s for r in results))
    drops = {}
    for r in results:
        for k, v in r.metrics["drops_by_stage"].items():
            drops[k] = drops.get(k, 0) + v
    assert row["drops_by_stage"] == drops


def test_policy_counters_are_summed_over_seeds():
    from comllm.evaluate.metrics import sum_policy_stats

    s = sum_policy_stats([{"decisions": 10, "invalid": 1, "invalid_rate": 0.1}, {"decisions": 30, "invalid": 9, "invalid_rate": 0.3}])
    assert s == {"decisions": 40, "invalid": 10, "invalid_rate": 0.25}


ROW = {
    "policy": "greedy", "scenario": "paper-6", "avg_latency": 5.22249, "avg_latency_ci": 0.30712, "drop_rate": 0.01351,
    "drop_rate_ci": 0.01204, "jain_index": None, "jain_index_ci": None, "jain_utilization": 0.8831, "jain_utilization_ci": 0.0,
    "latency_p95": 10.0, "latency_p95_ci": 0.0, "offload_share": 0.0, "offload_share_ci": 0.0, "n_tasks": 7, "seeds": [0, 1],
}  # fmt: skip
CELLS = ["greedy", "paper-6", "5.222 ± 0.307", "1.35 % ± 1.20", "–", "0.883", "10.000", "0.00 %"]


def test_one_column_spec_in_markdown_terminal_csv_and_json(tmp_path):
    from rich.console import Console

    md = markdown([ROW]).splitlines()
    assert md[0] == "| policy | scenario | latency (slots) | drops | Jain (offloads) | Jain (util.) | p95 latency | offloaded |"
    assert md[2] == "| " + " | ".join(CELLS) + " |"
    console = Console(width=200, record=True)
    console.print(rich_table([ROW], "t"))
    line = next(x for x in console.export_text().splitlines() if x.startswith("│ greedy"))
    assert [c.strip() for c in line.strip("│").split("│")] == CELLS
    spec_keys = ["policy", "scenario", "avg_latency", "avg_latency_ci", "drop_rate", "drop_rate_ci", "jain_index",
                 "jain_index_ci", "jain_utilization", "jain_utilization_ci", "latency_p95", "latency_p95_ci",
                 "offload_share", "offload_share_ci"]  # fmt: skip
    shuffled = dict(reversed(list(ROW.items())))
    assert to_csv([shuffled]).splitlines()[0].split(",") == spec_keys + ["seeds", "n_tasks"]
    paths = write_tables([shuffled], tmp_path, "t")
    assert list(json.loads(paths[2].read_text())[0]) == spec_keys + ["seeds", "n_tasks"]
    assert paths[0].read_text().splitlines()[2] == md[2]
    assert [c.title for c in COLUMNS] == md[0].strip("| ").split(" | ")


def test_job_grid_nesting_placeholder_and_overrides():
    grid = job_grid(["greedy", "random:{n}"], ["small", "paper-6"], 2, slots=10, warmup=3, loads=[0.2, None],
                    decisions=["sequential"], overrides=["deadline=8"])  # fmt: skip
    assert len(grid) == 2 * 2 * 1 * 2 * 2
    first = grid[:4]
    assert [(j.label, j.seed) for j in first] == [("greedy", 0), ("greedy", 1), ("random:{n}", 0), ("random:{n}", 1)]
    assert all(j.overrides == ("deadline=8", "arrival_prob=0.2", "decisions=sequential") for j in first)
    assert grid[4].overrides == ("deadline=8", "decisions=sequential") and grid[4].scenario == "small"
    n_small, n_paper = load_scenario("small").n_servers, load_scenario("paper-6").n_servers
    assert {j.policy for j in grid if j.scenario == "small"} == {"greedy", f"random:{n_small}"}
    assert {j.policy for j in grid if j.scenario == "paper-6"} == {"greedy", f"random:{n_paper}"}
    assert all((j.slots, j.warmup, j.keep_latencies) == (10, 3, False) for j in grid)
    # label -> spec per scenario, latencies kept where asked
    grid = job_grid(lambda sc, s: {"G": "greedy", f"R{s.n_servers}": "random"}, ["small"], [4, 7], slots=5, warmup=0,
                    keep_latencies=lambda sc, seed: seed == 4)  # fmt: skip
    assert [(j.label, j.policy, j.seed, j.keep_latencies) for j in grid] == [
        ("G", "greedy", 4, True), ("G", "greedy", 7, False),
        (f"R{n_small}", "random", 4, True), (f"R{n_small}", "random", 7, False),
    ]  # fmt: skip


def test_check_jobs_fails_fast_with_the_one_line_errors():
    from comllm.policies.base import PolicyError
    from comllm.scenario import ScenarioError

    check_jobs(job_grid(["greedy"], ["small"], 1, slots=5, warmup=0, loads=[0.3]))
    with pytest.raises(ScenarioError, match="arrival_prob"):
        check_jobs(job_grid(["greedy"], ["small"], 1, slots=5, warmup=0, loads=[0.3, 7.0]))
    with pytest.raises(PolicyError, match="nope"):
        check_jobs(job_grid(["greedy", "nope"], ["small"], 1, slots=5, warmup=0))
    assert axis_label("small", ["arrival_prob=0.3", "decisions=sequential"]) == "small (p=0.3, sequential)"
    assert axis_label("small", ["arrival_prob=0.3"], load=False) == "small"


def test_one_table_of_policy_labels():
    from comllm.experiments.benchmark import shipped_policies
    from comllm.experiments.labels import LABELS, LM_STAGES, SHIPPED_DRL, SHIPPED_LMS, label

    assert set(LM_STAGES) <= set(LABELS) and set(SHIPPED_LMS.values()) <= set(LABELS)
    assert set(SHIPPED_DRL.values()) <= set(LABELS) and label("greedy") == "greedy"
    shipped = shipped_policies(6)
    assert {"SFT", "DQN", "D3QN-LSTM"} <= set(shipped) and shipped["D3QN-LSTM"].endswith("d3qn-6")


def test_read_curve_takes_the_iterations_of_comllm_improve(tmp_path):
    """An improve run's train_log.csv (one row per iteration) is a training curve: loss and closed-loop latency."""
    from comllm.report.build import read_curve

    (tmp_path / "train_log.csv").write_text(
        "iteration,states,loss,expected_advantage,eval_latency,eval_drop_rate,mix\n"
        "1,100,0.5,-0.1,4.3,0.01,arrival_prob=0.3\n2,100,0.4,-0.05,4.2,0.0,arrival_prob=0.5\n"
    )
    curve = read_curve(tmp_path)
    assert curve == {"step": [1.0, 2.0], "loss": [0.5, 0.4], "eval_latency": [4.3, 4.2], "eval_drop_rate": [0.01, 0.0]}
