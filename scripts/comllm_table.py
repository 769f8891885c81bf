"""The README's COMLLM table: the language models' closed-loop runs beside the fresh-view baselines.

    python scripts/comllm_table.py RESULTS.json... [--out docs/results/comllm.md] [--label SPEC=LABEL ...]

RESULTS: ``comllm simulate --json`` files of the language models (one setting each, e.g. from
``comllm simulate --scenario paper-6 --policy llm:comllm --slots 2000 --seeds 3 --set
arrival_prob=0.3 --set decisions=sequential --json F``). The baselines' rows come from
``docs/results/fresh-view.json`` (greedy, greedy:incoming, DQN), ``docs/results/fresh-view-sharing.json``
(greedy:sharing) and ``docs/results/fresh-view-planner.json`` (the planner, 400 slots × 2 seeds). One table per
protocol: latency ± 95 % CI / drops / Jain of offloads, and each model's per-server share.
``--label`` names a model's rows (its spec without ``threads=``, e.g. ``llm:runs/x/final=GRPO``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BASE = {
    "greedy": "greedy", "greedy:incoming": "greedy:incoming", "greedy:sharing": "greedy:sharing", "dqn:{n}": "DQN",
    "lacs-planner:5,16": "lacs-planner",
}  # fmt: skip
BASE_FILES = (
    "docs/results/fresh-view.json", "docs/results/fresh-view-sharing.json", "docs/results/fresh-view-planner.json"
)  # fmt: skip
SETTINGS = [("paper-6", "0.3"), ("paper-6", "0.5"), ("paper-11", "0.3"), ("paper-11", "0.5")]


def key(row: dict) -> tuple[str, str, str]:
    over = dict(o.split("=", 1) for o in row.get("overrides", []))
    return row["scenario"].split(" ")[0], f"{float(over.get('arrival_prob', 0.3)):g}", over.get("decisions", "simultaneous")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/results/comllm.md"))
    ap.add_argument("--label", action="append", default=[], help="SPEC=LABEL: the rows' name for a model (repeatable)")
    args = ap.parse_args()
    labels = dict(x.rsplit("=", 1) for x in args.label)
    rows: dict[tuple[str, tuple[str, str, str]], dict] = {}
    for f in BASE_FILES:
        for r in json.loads(Path(f).read_text()):
            if r["policy"] in BASE:
                rows[(BASE[r["policy"]], key(r))] = r
    models: list[str] = []
    for f in args.results:
        data = json.loads(f.read_text())
        for r in data if isinstance(data, list) else [data]:
            name = ",".join(x for x in r["policy"].split(",") if not x.startswith("threads="))  # options that change decisions kept
            name = labels.get(name, name)
            models.append(name) if name not in models else None
            rows[(name, key(r))] = r
    order = [*models, *BASE.values()]
    out = []
    for proto in ("simultaneous", "sequential"):
        out.append(f"**{proto}** (latency in slots ± 95 % CI / drops / Jain of offloads)\n")
        out.append("| policy | " + " | ".join(f"{sc} p {p}" for sc, p in SETTINGS) + " |")
        out.append("|---|" + "---|" * len(SETTINGS))
        for pol in order:
            cells = []
            for sc, p in SETTINGS:
                r = rows.get((pol, (sc, p, proto)))
                cells.append("–" if r is None else f"{r['avg_latency']:.3f} ± {r['avg_latency_ci']:.3f} / "
                             f"{100 * r['drop_rate']:.2f} % / {r['jain_index']:.2f}")  # fmt: skip
            if any(c != "–" for c in cells):  # a row only where the policy ran in this protocol
                out.append(f"| {pol} | " + " | ".join(cells) + " |")
        out.append("")
        for pol in models:
            for sc, p in SETTINGS:
                r = rows.get((pol, (sc, p, proto)))
                if r is not None:
                    share = " ".join(f"{100 * s:.0f}" for s in r["per_server_share"])
                    out.append(f"- {pol}, {sc} p {p}: per-server share of offloads (%) {share}")
        out.append("")
    args.out.write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
