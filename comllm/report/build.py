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

_STEP_KEYS = ("step", "global_step", "timesteps", "steps", "total_timesteps", "iteration")  # iteration: comllm improve
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


def _closed_loop(rows: list[dict], out: Path, ecfg: dict) -> list[str]:
    """The closed-loop table's section, and one per-server share plot per scenario (in row order)."""
    md = [
        f"## Closed loop\n\n{ecfg.get('slots', '?')} scored slots after {ecfg.get('warmup', '?')} of warm-up, "
        f"{ecfg.get('seeds', '?')} seeds, mean ± 95 % CI across seeds.\n\n" + markdown(rows)
    ]
    for sc in dict.fromkeys(r["scenario"] for r in rows):
        sc_rows = [r for r in rows if r["scenario"] == sc]
        p = plots.server_share(sc_rows, out / f"server_share_{sc}.png", f"per-server share, {sc}")
        md.append(f"\n![per-server share {sc}]({p.name})\n")
    return md


def _closed_loop_heavy(rows: list[dict], out: Path, ecfg: dict) -> list[str]:
    return [f"\n## Closed loop, heavy load ({', '.join(rows[0]['overrides'])})\n\n" + markdown(rows)]


def _latency_cdf(lat: dict, out: Path, ecfg: dict) -> list[str]:
    """The latency CDF plot; nothing when the file holds no latencies."""
    if not lat.get("latencies"):
        return []
    p = plots.latency_cdf(lat["latencies"], out / "latency_cdf.png", f"latency CDF, {lat['scenario']} (seed 0)")
    return [f"\n![latency CDF]({p.name})\n"]


def _load_sweep(rows: list[dict], out: Path, ecfg: dict) -> list[str]:
    sc = rows[0]["scenario"]
    p = plots.load_sweep(rows, out / "load_sweep.png", sc)
    return [f"\n## Load sweep ({sc})\n\n![latency and drops against load]({p.name})\n"]


def _zero_shot(rows: list[dict], out: Path, ecfg: dict) -> list[str]:
    p = plots.zero_shot(rows, out / "zero_shot.png")
    return [f"\n## Zero-shot over server counts (open loop)\n\n![zero-shot]({p.name})\n\n" + markdown(rows, ZERO_SHOT_COLUMNS)]


def _open_loop(rows: list[dict], out: Path, ecfg: dict) -> list[str]:
    return ["\n## Open loop (the reference's protocol)\n\n" + markdown(rows, OPEN_LOOP_COLUMNS)]


def _robustness(rows: list[dict], out: Path, ecfg: dict) -> list[str]:
    """The robustness plot and section, from the rows without an ``error``; nothing when every row failed."""
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return []
    p = plots.robustness(ok, out / "robustness.png")
    return [f"\n## Robustness to prompt perturbations\n\n![robustness]({p.name})\n\n" + markdown(rows, ROBUSTNESS_COLUMNS)]


#: ``write_tables`` with the shared column spec: ``stem.md``, ``stem.csv``, ``stem.json``
_SHARED_TABLES = "shared"

#: The result files of ``eval/`` in report order: (file stem, tables, section). ``tables`` is
#: :data:`_SHARED_TABLES`, a column spec (``stem.md`` with those columns and the rows as they are in
#: ``stem.json``) or ``None`` (no table); tables are written under the same stem in ``report/``.
#: ``section(content, report_folder, eval_config)`` writes the plots and returns the README's Markdown
#: chunks. A file that is missing or empty is skipped.
_RESULTS: tuple[tuple[str, Any, Callable[[Any, Path, dict], list[str]]], ...] = (
    ("closed_loop", _SHARED_TABLES, _closed_loop),
    ("closed_loop_heavy", _SHARED_TABLES, _closed_loop_heavy),
    ("latencies", None, _latency_cdf),
    ("load_sweep", _SHARED_TABLES, _load_sweep),
    ("zero_shot", ZERO_SHOT_COLUMNS, _zero_shot),
    ("open_loop", OPEN_LOOP_COLUMNS, _open_loop),
    ("robustness", ROBUSTNESS_COLUMNS, _robustness),
)


def _write_result_tables(rows: Any, out: Path, stem: str, tables: Any) -> None:
    if tables == _SHARED_TABLES:
        write_tables(rows, out, stem)
    elif tables is not None:
        (out / f"{stem}.md").write_text(markdown(rows, tables))
        (out / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")


def _training_curves(run: Path, out: Path) -> list[str]:
    """One plot of the training logs of the LM stages and of each ``dqn/*`` folder; nothing without logs."""
    curves = {}
    for name in LM_STAGES:
        c = read_curve(run / name)
        if c:
            curves[label(name)] = c
    for folder in sorted((run / "dqn").glob("*")) if (run / "dqn").is_dir() else []:
        c = read_curve(folder)
        if c:
            curves[folder.name] = c
    if not curves:
        return []
    p = plots.training_curves(curves, out / "training_curves.png")
    return [f"\n## Training curves\n\n![training curves]({p.name})\n"]


def _run_section(manifest: dict) -> list[str]:
    """The manifest's stages (status, wall time), git revision and versions; nothing without stages."""
    stages = manifest.get("stages", {})
    if not stages:
        return []
    stage_rows = [{"stage": k, "status": s.get("status"), "wall_s": s.get("wall_s")} for k, s in stages.items()]
    return [
        "\n## Run\n\n" + markdown(stage_rows, STAGE_COLUMNS).rstrip("\n"),
        f"\ngit revision {manifest.get('git_revision')}; "
        + ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())
        + "\n",
    ]


def build_report(run_dir: str | Path, log: Callable[[str], None] = print) -> Path:
    """Write the report of ``run_dir``; returns the report folder.

    Raises :class:`ComllmError` when ``run_dir`` has no ``eval/`` folder. Walks :data:`_RESULTS`
    (tables, then plots, per file), then the training curves and the manifest's stages, and writes
    ``report/README.md`` last.
    """
    run = Path(run_dir)
    ev = run / "eval"
    if not ev.is_dir():
        raise ComllmError(f"'{run}' has no eval/ folder: run the pipeline's eval stage first")
    out = run / "report"
    out.mkdir(parents=True, exist_ok=True)
    manifest = _load(run / "manifest.json") or {}
    md: list[str] = [f"# Results: {manifest.get('name', run.name)}\n"]
    ecfg = manifest.get("config", {}).get("eval", {})
    for stem, tables, section in _RESULTS:
        content = _load(ev / f"{stem}.json")
        if not content:
            continue
        _write_result_tables(content, out, stem, tables)
        md += section(content, out, ecfg)
    md += _training_curves(run, out)
    md += _run_section(manifest)
    (out / "README.md").write_text("\n".join(md) + "\n")
    log(f"[report] wrote {out}")
    return out
