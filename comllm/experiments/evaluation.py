"""The pipeline's evaluation stage: every policy, closed and open loop, written as JSON under ``RUN/eval``.

Files written:

* ``closed_loop.json``: policies × scenarios at the scenarios' own load, and
  ``closed_loop_heavy.json`` at ``eval.heavy_prob`` (rows of :func:`~comllm.experiments.sweep.aggregate`);
* ``latencies.json``: every scored task's latency, seed 0, first scenario (latency CDF);
* ``load_sweep.json``: the first scenario at each arrival probability of ``eval.loads``;
* ``zero_shot.json``: open-loop metrics of each language-model policy (and the oracle) per server count;
* ``robustness.json``: open-loop metrics of each language-model policy under each prompt perturbation;
* ``open_loop.json``: open-loop metrics of every policy on the test sets of ``data.test_servers``.

Open-loop metrics are scored against ``eval.oracle``: the paper's one-step formula or the fresh
view's (``greedy:incoming``, which is then the zero-shot table's reference row).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from comllm.experiments.grid import job_grid
from comllm.experiments.labels import LM_STAGES, label
from comllm.experiments.sweep import aggregate, run_sweep

if TYPE_CHECKING:
    from comllm.experiments.pipeline import Pipeline


from comllm.experiments.sweep import quiet_transformers  # noqa: E402,F401  (where it lived before)


def _needs_simulator(spec: str) -> bool:
    """True for a policy that plans on the live simulator (``Policy.needs_simulator``): it has no
    open-loop form, and the load sweep leaves it out (it is slow)."""
    from comllm.policies.base import policy_class

    return policy_class(spec).needs_simulator


def lm_policies(pipe: "Pipeline") -> dict[str, str]:
    """Label -> policy spec of the language models this run trained (``comllm improve`` leaves
    its model in ``final/`` of the stage folder; the other commands in the folder itself), with
    the stage's ``eval.lm_options``."""

    def folder(stage: str) -> Path:
        final = pipe.run_dir / stage / "final"
        return final if (final / "config.json").is_file() else pipe.run_dir / stage

    options = pipe.cfg.eval.lm_options
    return {
        label(stage): f"llm:{folder(stage)}" + (f",{options[stage]}" if options.get(stage) else "")
        for stage in LM_STAGES
        if pipe.is_done(stage) and (pipe.run_dir / stage).is_dir()
    }


def policies_for(pipe: "Pipeline", scenario: str) -> dict[str, str]:
    """Label -> spec of every policy evaluated on ``scenario`` (DRL agents: the one trained for it)."""
    out = {b: b for b in pipe.cfg.eval.baselines}
    out.update(lm_policies(pipe))
    if pipe.is_done("dqn"):
        for algo in pipe.cfg.dqn.algos:
            folder = pipe.run_dir / "dqn" / f"{algo}-{scenario}"
            if folder.is_dir():
                out[label(algo)] = f"dqn:{folder}"
    return out


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")


def _closed_loop(pipe: "Pipeline", overrides: tuple[str, ...], keep: bool, log: Callable[[str], None]) -> tuple[list, dict]:
    e = pipe.cfg.eval
    jobs = job_grid(
        lambda sc, _: policies_for(pipe, sc), e.scenarios, e.seeds, slots=e.slots, warmup=e.warmup,
        overrides=overrides, keep_latencies=lambda sc, s: keep and s == 0 and sc == e.scenarios[0],
    )  # fmt: skip
    log(f"[eval] closed loop {' '.join(overrides) or 'default load'}: {len(jobs)} episodes on {e.workers} workers")
    results = run_sweep(jobs, workers=e.workers, ray_address=e.ray)
    lat = {r.job.label: r.metrics["latencies"] for r in results if r.metrics.get("latencies") is not None}
    return aggregate(results), lat


def _open_loop_rows(
    spec_by_label: dict[str, str], files: dict[int, Path], log: Callable[[str], None], limit: int | None = None,
    oracle: str = "paper",
) -> list[dict]:
    """Open-loop rows of every policy on every file (its first ``limit`` records), against ``oracle``."""
    from comllm.data.records import read_records
    from comllm.evaluate.open_loop import evaluate_open_loop
    from comllm.policies import make_policy

    rows = []
    for n, path in files.items():
        records = list(read_records(path))[:limit]
        for label, spec in spec_by_label.items():
            res = evaluate_open_loop(records, make_policy(spec), oracle=oracle)
            rows.append({**{k: v for k, v in res.items() if k != "by_servers"}, "policy": label, "n_servers": n,
                         "oracle": oracle})  # fmt: skip
        log(f"[eval] open loop on {path.name}: {len(spec_by_label)} policies")
    return rows


def _robustness(pipe: "Pipeline", log: Callable[[str], None]) -> list[dict]:
    from comllm.data.records import read_records
    from comllm.evaluate.open_loop import evaluate_open_loop
    from comllm.policies import make_policy
    from comllm.text.perturb import perturbed_template

    e = pipe.cfg.eval
    n = pipe.cfg.data.test_servers[0]
    records = list(read_records(pipe.data_dir() / f"test-{n}.jsonl.gz"))[: e.robustness_n]
    rows = []
    for label, spec in lm_policies(pipe).items():
        for pert in e.perturbations:
            policy = make_policy(spec)
            row: dict[str, Any] = {"policy": label, "perturbation": pert, "n_servers": n, "oracle": e.oracle}
            if pert != "none":
                try:
                    policy.template = perturbed_template(pert, seed=pipe.cfg.seed, base=policy.template)
                except Exception as err:  # noqa: BLE001  (a perturbation the template cannot take is reported)
                    rows.append({**row, "error": str(err)})
                    continue
            res = evaluate_open_loop(records, policy, oracle=e.oracle)
            rows.append({**{k: v for k, v in res.items() if k != "by_servers"}, **row})
        log(f"[eval] robustness of {label}: {len(e.perturbations)} perturbations")
    return rows


def run_evaluation(pipe: "Pipeline", log: Callable[[str], None] = print) -> None:
    """Write every file of the module docstring under ``RUN/eval``."""
    quiet_transformers()
    e, out = pipe.cfg.eval, pipe.run_dir / "eval"
    rows, lat = _closed_loop(pipe, (), keep=True, log=log)
    _write(out / "closed_loop.json", rows)
    _write(out / "latencies.json", {"scenario": e.scenarios[0], "latencies": lat})
    if e.heavy_prob is not None:
        heavy, _ = _closed_loop(pipe, (f"arrival_prob={e.heavy_prob}",), keep=False, log=log)
        _write(out / "closed_loop_heavy.json", heavy)
    if e.loads:
        sc = e.scenarios[0]
        pols = policies_for(pipe, sc)
        chosen = e.load_policies or [k for k in pols if not _needs_simulator(pols[k])]
        jobs = job_grid(
            {k: pols[k] for k in chosen if k in pols}, [sc], e.seeds, slots=e.load_slots, warmup=e.warmup, loads=e.loads
        )  # fmt: skip
        log(f"[eval] load sweep on {sc}: {len(jobs)} episodes")
        _write(out / "load_sweep.json", aggregate(run_sweep(jobs, workers=e.workers, ray_address=e.ray)))
    lms = lm_policies(pipe)
    data = pipe.data_dir()
    zs_files = {n: data / f"test-{n}.jsonl.gz" for n in e.server_counts if (data / f"test-{n}.jsonl.gz").is_file()}
    oracle_policy = "greedy" if e.oracle == "paper" else f"greedy:{e.oracle}"  # the estimate's own greedy policy
    _write(out / "zero_shot.json", _open_loop_rows({**lms, oracle_policy: oracle_policy}, zs_files, log, e.zero_shot_n, e.oracle))
    ol_files = {n: data / f"test-{n}.jsonl.gz" for n in pipe.cfg.data.test_servers}
    # open loop has no simulator, and a spec of the scenario's size (dqn:{n}) no single form
    baselines = {b: b for b in e.baselines if "{n}" not in b and not _needs_simulator(b)}
    _write(out / "open_loop.json", _open_loop_rows({**baselines, **lms}, ol_files, log, oracle=e.oracle))
    if lms and e.perturbations:
        _write(out / "robustness.json", _robustness(pipe, log))
