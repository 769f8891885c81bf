"""``comllm report RUN_DIR``: tables and plots from a pipeline run's ``eval/`` results.

Writes ``RUN/report/``: one Markdown/CSV/JSON triple per table, one PNG per plot,
and ``README.md`` that puts them together (the README's Results section is this
file). Missing inputs (a stage that did not run) are skipped, not errors.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable

from comllm.errors import ComllmError
from comllm.experiments.labels import LM_STAGES, label
from comllm.report import plots
from comllm.report.tables import (
    OPEN_LOOP_COLUMNS,
    ROBUSTNESS_COLUMNS,
    STAGE_COLUMNS,
    ZERO_SHOT_COLUMNS,
    markdown,
    write_tables,
)

_STEP_KEYS = ("step", "global_step", "timesteps", "steps", "total_timesteps")
_METRIC_WORDS = ("loss", "reward", "latency", "accuracy", "drop")


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def read_curve(folder: Path, max_metrics: int = 4) -> dict[str, list[float]]:
    """A training log (the first CSV with a step column) as ``{"step": [...], metric: [...]}``."""
    names = ("train_log.csv", "log.csv", "progress.csv", "metrics.csv", "training.csv")
    candidates = [folder / n for n in names if (folder / n).is_file()] + sorted(folder.glob("*.csv"))
    for path in candidates:
        with path.open() as f:
            rows = list(csv.DictReader(f))
        if not rows:
            continue
        step_key = next((k for k in _STEP_KEYS if k in rows[0]), None)
        if step_key is None:
            continue
        metrics = [k for k in rows[0] if k != step_key and any(w in k.lower() for w in _METRIC_WORDS)][:max_metrics]
        curve: dict[str, list[float]] = {"step": []}
        for k in metrics:
            curve[k] = []
        for r in rows:
            try:
                vals = [float(r[step_key])] + [float(r[k]) if r[k] not in ("", None) else float("nan") for k in metrics]
            except ValueError:
                continue
            curve["step"].append(vals[0])
            for k, v in zip(metrics, vals[1:]):
                curve[k].append(v)
        if curve["step"]:
            return curve
    return {}


def build_report(run_dir: str | Path, log: Callable[[str], None] = print) -> Path:
    """Write the report of ``run_dir``; returns the report folder."""
    run = Path(run_dir)
    ev = run / "eval"
    if not ev.is_dir():
        raise ComllmError(f"'{run}' has no eval/ folder: run the pipeline's eval stage first")
    out = run / "report"
    out.mkdir(parents=True, exist_ok=True)
    manifest = _load(run / "manifest.json") or {}
    md: list[str] = [f"# Results: {manifest.get('name', run.name)}\n"]
    cfg = manifest.get("config", {})
    ecfg = cfg.get("eval", {})

    closed = _load(ev / "closed_loop.json")
    if closed:
        write_tables(closed, out, "closed_loop")
        md.append(
            f"## Closed loop\n\n{ecfg.get('slots', '?')} scored slots after {ecfg.get('warmup', '?')} of warm-up, "
            f"{ecfg.get('seeds', '?')} seeds, mean ± 95 % CI across seeds.\n\n" + markdown(closed)
        )
        for sc in dict.fromkeys(r["scenario"] for r in closed):
            rows = [r for r in closed if r["scenario"] == sc]
            p = plots.server_share(rows, out / f"server_share_{sc}.png", f"per-server share, {sc}")
            md.append(f"\n![per-server share {sc}]({p.name})\n")
    heavy = _load(ev / "closed_loop_heavy.json")
    if heavy:
        write_tables(heavy, out, "closed_loop_heavy")
        md.append(f"\n## Closed loop, heavy load ({', '.join(heavy[0]['overrides'])})\n\n" + markdown(heavy))
    lat = _load(ev / "latencies.json")
    if lat and lat.get("latencies"):
        p = plots.latency_cdf(lat["latencies"], out / "latency_cdf.png", f"latency CDF, {lat['scenario']} (seed 0)")
        md.append(f"\n![latency CDF]({p.name})\n")
    load = _load(ev / "load_sweep.json")
    if load:
        write_tables(load, out, "load_sweep")
        sc = load[0]["scenario"]
        p = plots.load_sweep(load, out / "load_sweep.png", sc)
        md.append(f"\n## Load sweep ({sc})\n\n![latency and drops against load]({p.name})\n")
    zs = _load(ev / "zero_shot.json")
    if zs:
        cols = ZERO_SHOT_COLUMNS
        (out / "zero_shot.md").write_text(markdown(zs, cols))
        (out / "zero_shot.json").write_text(json.dumps(zs, indent=2) + "\n")
        p = plots.zero_shot(zs, out / "zero_shot.png")
        md.append(f"\n## Zero-shot over server counts (open loop)\n\n![zero-shot]({p.name})\n\n" + markdown(zs, cols))
    ol = _load(ev / "open_loop.json")
    if ol:
        cols = OPEN_LOOP_COLUMNS
        (out / "open_loop.md").write_text(markdown(ol, cols))
        (out / "open_loop.json").write_text(json.dumps(ol, indent=2) + "\n")
        md.append("\n## Open loop (the reference's protocol)\n\n" + markdown(ol, cols))
    rob = _load(ev / "robustness.json")
    if rob:
        ok = [r for r in rob if "error" not in r]
        cols = ROBUSTNESS_COLUMNS
        (out / "robustness.md").write_text(markdown(rob, cols))
        (out / "robustness.json").write_text(json.dumps(rob, indent=2) + "\n")
        if ok:
            p = plots.robustness(ok, out / "robustness.png")
            md.append(f"\n## Robustness to prompt perturbations\n\n![robustness]({p.name})\n\n" + markdown(rob, cols))
    curves = {}
    for name in LM_STAGES:
        c = read_curve(run / name)
        if c:
            curves[label(name)] = c
    for folder in sorted((run / "dqn").glob("*")) if (run / "dqn").is_dir() else []:
        c = read_curve(folder)
        if c:
            curves[folder.name] = c
    if curves:
        p = plots.training_curves(curves, out / "training_curves.png")
        md.append(f"\n## Training curves\n\n![training curves]({p.name})\n")
    stages = manifest.get("stages", {})
    if stages:
        stage_rows = [{"stage": k, "status": s.get("status"), "wall_s": s.get("wall_s")} for k, s in stages.items()]
        md.append("\n## Run\n\n" + markdown(stage_rows, STAGE_COLUMNS).rstrip("\n"))
        md.append(
            f"\ngit revision {manifest.get('git_revision')}; "
            + ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())
            + "\n"
        )
    (out / "README.md").write_text("\n".join(md) + "\n")
    log(f"[report] wrote {out}")
    return out
