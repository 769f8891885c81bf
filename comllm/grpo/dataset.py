"""The GRPO training set: one row per record, the prompt rendered with the model's own template.

Columns (TRL passes every column but ``prompt`` to the reward functions as
lists aligned with the completions):

* ``prompt``: the record's state rendered by the model's template plus its
  answer marker (:meth:`~comllm.lm.loading.LoadedLM.prompt_text`), so one data
  file serves every template;
* ``snapshot``: the simulator snapshot at the start of the record's slot, as a
  JSON string (the LACS reward re-simulates from it; the prompt is never parsed);
* ``device``: the index of the device whose task the record is;
* ``n_servers``, ``costs`` (one-step cost of every action, slots, as JSON) and
  ``oracle_action``: for the decision metrics logged beside the rewards;
* ``slot_decisions``: records of a ``decisions=sequential`` trajectory, the slot's
  earlier decisions as JSON ``[[device, action], ...]`` (``""`` otherwise), which the
  LACS reward fixes in its rollouts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from comllm.data.records import DataError, read_records
from comllm.grpo.config import GRPOError

COLUMNS = ("prompt", "snapshot", "device", "n_servers", "costs", "oracle_action", "slot_decisions")


def record_rows(lm: Any, paths: list[str], limit: int | None = None) -> dict[str, list[Any]]:
    """Column lists of the records in ``paths`` (at most ``limit``), prompts in ``lm``'s template."""
    rows: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for path in paths:
        if not Path(path).is_file():
            raise GRPOError(f"data file '{path}' does not exist")
        try:
            for i, rec in enumerate(read_records(path), start=1):
                if rec.snapshot is None:
                    raise GRPOError(
                        f"{path}: record {i} carries no simulator snapshot (official-format records have none); "
                        "GRPO rewards re-simulate from it: generate data with `comllm data --split grpo`"
                    )
                if rec.device < 0:
                    raise GRPOError(f"{path}: record {i} has device={rec.device}; the reward needs the deciding device")
                rows["prompt"].append(lm.prompt_text(rec.task_state()))
                rows["snapshot"].append(json.dumps(rec.snapshot, separators=(",", ":")))
                rows["device"].append(int(rec.device))
                rows["n_servers"].append(int(rec.n_servers))
                rows["costs"].append(json.dumps(rec.costs))
                rows["oracle_action"].append(int(rec.oracle_action))
                dec = rec.slot_decisions
                rows["slot_decisions"].append("" if dec is None else json.dumps([list(p) for p in dec]))
                if limit is not None and len(rows["prompt"]) >= limit:
                    return rows
        except DataError as err:
            raise GRPOError(f"{path}: {err}") from None
    if not rows["prompt"]:
        raise GRPOError(f"no records in {', '.join(paths)}")
    return rows


def build_dataset(lm: Any, paths: list[str], limit: int | None = None) -> Any:
    """A :class:`datasets.Dataset` of the records (see the module docstring)."""
    from datasets import Dataset

    return Dataset.from_dict(record_rows(lm, paths, limit))
