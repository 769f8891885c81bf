"""Checkpoints that are data and are never half written (README, "What is safe").

Every training command (``comllm sft``, ``comllm grpo``, ``comllm dqn train``)
writes its checkpoints through this module:

* :func:`atomic_write_text` / :func:`atomic_write_bytes` write a file under a
  temporary name in the same folder, flush it to disk and rename it over the
  target, so a reader sees the old file or the new one, never a part;
* :func:`staged_dir` builds a checkpoint folder under a temporary name and
  renames it into place when it is complete; :func:`clean_staging` removes what
  a killed run left under those temporary names;
* :func:`save_state` / :func:`load_state` keep a training state (optimizer,
  replay buffer, random streams, counters) as one safetensors file: tensors and
  arrays as safetensors tensors, everything else as JSON in its header. Loading
  it parses JSON and raw tensor bytes and nothing else: no pickle, no code;
* :func:`truncate_csv` cuts a training log back to the step a run resumes from,
  so a resumed run never repeats a row.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from comllm.errors import ComllmError

STATE_FORMAT = "comllm-state/1"
#: suffix of files and folders being written (``.NAME.tmp-PID``)
_TMP = re.compile(r"^\..+\.tmp-\d+$")


class CheckpointError(ComllmError, ValueError):
    """A checkpoint file that cannot be read as data (the message names the file)."""


# ------------------------------------------------------------------ atomic files
def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once: a temporary file, fsync, rename."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Indented JSON, written atomically."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


@contextlib.contextmanager
def staged_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``final``; rename it to ``final`` when the block succeeds.

    An existing ``final`` is replaced (moved aside first, removed after the
    rename). If the block raises, or the process dies, ``final`` is untouched
    and the temporary folder (``.NAME.tmp-PID``) is left for :func:`clean_staging`.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_dir(tmp, final)


def publish_dir(src: str | Path, final: str | Path) -> None:
    """Flush every file of the complete folder ``src`` to disk, then rename it to ``final`` (replacing it)."""
    src, final = Path(src), Path(final)
    for p in src.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    old = final.with_name(f".{final.name}.old.tmp-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(src, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_files(dest: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder inside ``dest``; when the block succeeds, move each file into ``dest``.

    Each file replaces its namesake atomically (the set of files is not one
    atomic step: write what says "finished" after this block).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".files.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for p in sorted(tmp.iterdir()):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(p, dest / p.name)
        _fsync_dir(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is a temporary name of this module (``.NAME.tmp-PID``)."""
    return bool(_TMP.match(Path(path).name))


def clean_staging(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders (``.NAME.tmp-PID``) a killed run left in ``folder``.

    Call it only while holding the folder's lock (:mod:`comllm.locking`): then
    no other process is writing them. Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        if is_temporary(p):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# ------------------------------------------------------------------ state files
def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"$tensor": key}
    if isinstance(obj, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"$ndarray": key}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return {"$tuple": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        return {"$dict": [[_encode(k, tensors, where), _encode(v, tensors, f"{where}.{k}")] for k, v in obj.items()]}
    raise TypeError(f"state field '{where}' is a {type(obj).__name__}: a state file holds tensors, arrays and JSON values")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        (tag, val), = obj.items()
        if tag == "$tensor":
            return tensors[val]
        if tag == "$ndarray":
            return tensors[val].numpy()
        if tag == "$tuple":
            return tuple(_decode(v, tensors) for v in val)
        if tag == "$dict":
            return {_decode(k, tensors): _decode(v, tensors) for k, v in val}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _unshare(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors that share memory (safetensors refuses them) are copied."""
    seen: set[int] = set()
    out = {}
    for k, t in tensors.items():
        if t.numel():
            storage = t.untyped_storage()
            whole = t.storage_offset() == 0 and storage.nbytes() == t.numel() * t.element_size()
            if storage.data_ptr() in seen or not whole:
                t = t.clone()
            seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts, lists, tuples, tensors, arrays, JSON scalars) as one safetensors file, atomically."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, tensors, "state")
    meta = {"format": STATE_FORMAT, "state": json.dumps(skeleton)}
    atomic_write_bytes(path, save(_unshare(tensors), metadata=meta))


def load_state(path: str | Path) -> dict[str, Any]:
    """The state written by :func:`save_state`; a damaged or foreign file raises :class:`CheckpointError`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"state file '{path}' does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if meta.get("format") != STATE_FORMAT:
                raise CheckpointError(f"'{path}' is not a comllm state file (format {meta.get('format')!r})")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        state = _decode(json.loads(meta["state"]), tensors)
    except CheckpointError:
        raise
    except Exception as err:  # safetensors raises its own error types; all mean "not readable"
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"state file '{path}' is damaged or incomplete: {msg[:200]}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"state file '{path}' holds no state")
    return state


def require(state: dict[str, Any], path: str | Path, *keys: str) -> None:
    """Raise :class:`CheckpointError` naming the first of ``keys`` missing from ``state``."""
    for k in keys:
        if k not in state:
            raise CheckpointError(f"state file '{path}' has no field '{k}'")


# ------------------------------------------------------------------ logs
def truncate_csv(
    path: str | Path, step: int, step_field: str = "step", keep: Callable[[dict[str, str]], bool] | None = None
) -> list[dict[str, str]]:
    """Keep the rows of a CSV log whose ``step`` is at most ``step`` (and that ``keep`` accepts), atomically.

    Returns the rows kept. Rows that do not parse (a line cut by a kill) are
    dropped. A missing file is left missing.
    """
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = []
        for r in reader:
            if None in r or any(v is None for v in r.values()):
                continue  # too many or too few columns: a partial line
            try:
                if int(r[step_field]) <= step and (keep is None or keep(r)):
                    rows.append(r)
            except (KeyError, TypeError, ValueError):
                continue
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return rows
