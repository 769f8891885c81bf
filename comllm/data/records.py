"""Dataset records: one JSONL line per decision, read and written as streams.

A :class:`Record` holds what a trainer and an evaluator need about one arriving
task: the prompt and the oracle answer in a template, the one-step cost of
every action (slots, :mod:`comllm.cost`), the typed state, and the simulator
snapshot at the start of that slot (the LACS reward re-simulates from it).

:func:`read_records` reads our JSONL and the official COMLLM format (a JSON
object, a JSON array of objects, or JSONL of objects with ``instruction`` /
``input`` / ``output``); official records are parsed into states and labelled
by our oracle. Files ending in ``.gz`` are (de)compressed on the fly.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import numpy as np

from comllm.cost import action_costs, oracle_from_costs
from comllm.errors import ComllmError, shorten
from comllm.scenario import SERVER_TYPE_NAMES
from comllm.sim import Snapshot
from comllm.state import FieldSpec, ServerView, StateBatch, TaskState, server_fields, task_fields
from comllm.text import Template, TextError, get_template, parse_answer, parse_field_items, parse_prompt_text
from comllm.text import vocab as V
from comllm.text.parse import _is_zh, split_prompt


#: longest error message about one record (a longer echoed value is cut in the middle)
MAX_MESSAGE = 300


class DataError(ComllmError, ValueError):
    """A malformed record or file; the message names the record number (1-based) and the field."""

    def __init__(self, message: str, record: int | None = None, field: str = "") -> None:
        where = f"record {record}: " if record is not None else ""
        super().__init__(where + message)
        self.record = record
        self.field = field
        self.detail = message


# ----------------------------------------------------------------- states
# (de)serialisation and value checks follow the schema of comllm.state: one field table


def state_to_dict(state: TaskState) -> dict[str, Any]:
    """A JSON-safe dict of a :class:`TaskState` (servers as a list of dicts, history as a list)."""
    d: dict[str, Any] = {}
    for spec in task_fields():
        d[spec.name] = getattr(state, spec.name)
    d["servers"] = [
        {spec.name: (list(v) if isinstance(v := getattr(s, spec.name), tuple) else v) for spec in server_fields()}
        for s in state.servers
    ]
    return d


def _num(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"field '{name}' = {value!r} is not a number", field=name)
    return float(value)


def _int(value: Any, name: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or float(value) != int(value)
    ):
        raise DataError(f"field '{name}' = {value!r} is not an integer", field=name)
    return int(value)


def _get(d: dict[str, Any], key: str, name: str) -> Any:
    if key not in d:
        raise DataError(f"missing field '{name}'", field=name)
    return d[key]


def _value(d: dict[str, Any], spec: FieldSpec, name: str) -> Any:
    """Field ``spec`` of ``d`` read, typed and range-checked (its default if absent and it has one)."""
    if spec.name not in d and spec.has_default:
        return spec.default
    raw = _get(d, spec.name, name)
    v = _int(raw, name) if spec.kind is int else _num(raw, name)
    why = spec.check(v)
    if why is not None:
        raise DataError(f"field '{name}' = {raw!r} {why} ({spec.unit or spec.doc})".replace(" ()", ""), field=name)
    return v


def state_from_dict(d: Any, prefix: str = "state") -> TaskState:
    """Inverse of :func:`state_to_dict`; :class:`DataError` names the bad field (``state.servers[2].active``).

    Fields the schema gives a default (the fresh-view fields) may be absent: older records read.
    """
    if not isinstance(d, dict):
        raise DataError(f"field '{prefix}' is not an object", field=prefix)
    servers_raw = _get(d, "servers", f"{prefix}.servers")
    if not isinstance(servers_raw, list) or not servers_raw:
        raise DataError(f"field '{prefix}.servers' must be a non-empty list", field=f"{prefix}.servers")
    servers = []
    for j, s in enumerate(servers_raw):
        p = f"{prefix}.servers[{j}]"
        if not isinstance(s, dict):
            raise DataError(f"field '{p}' is not an object", field=p)
        kw: dict[str, Any] = {}
        for spec in server_fields():
            name = f"{p}.{spec.name}"
            if spec.name == "type":
                typ = _get(s, "type", name)
                if typ not in SERVER_TYPE_NAMES:
                    raise DataError(f"field '{name}' = {typ!r} is not a server type {SERVER_TYPE_NAMES}", field=name)
                kw["type"] = typ
            elif spec.name == "history":
                hist = _get(s, "history", name)
                if not isinstance(hist, list):
                    raise DataError(f"field '{name}' is not a list", field=name)
                kw["history"] = tuple(_value({"history": h}, spec, f"{name}[{i}]") for i, h in enumerate(hist))
            else:
                kw[spec.name] = _value(s, spec, name)
        servers.append(ServerView(**kw))
    kw = {}
    for spec in task_fields():
        kw[spec.name] = _value(d, spec, f"{prefix}.{spec.name}")
    return TaskState(servers=tuple(servers), **kw)


# ----------------------------------------------------------------- records
@dataclass
class Record:
    """One decision of a dataset (one JSONL line). Costs are estimated latencies in slots."""

    id: int | str
    split: str
    scenario: str  # scenario name ("reference" for records read from the official format)
    n_servers: int
    template: str
    prompt: str
    answer: str  # the oracle's answer in ``template`` (with a reasoning trace if the set has them)
    oracle_action: int  # 0 local, j server j
    costs: list[float]  # one per action, 0..N
    state: dict[str, Any]  # state_to_dict(TaskState)
    device: int  # the device whose task it is (-1: unknown)
    snapshot: dict[str, Any] | None  # Snapshot.to_dict() at the start of the slot; None for official records
    behaviour: str = ""  # the behaviour policy that produced the trajectory
    source_action: int | None = None  # the label an imported official record carried
    labels: str = "greedy"  # the policy whose choice oracle_action / answer is
    slot_decisions: list[tuple[int, int]] | None = None  # sequential: (device, action) decided earlier in the slot
    _state_cache: TaskState | None = field(default=None, repr=False, compare=False)

    REQUIRED = (
        "id", "split", "scenario", "n_servers", "template", "prompt", "answer",
        "oracle_action", "costs", "state", "device", "snapshot",
    )  # fmt: skip

    def task_state(self) -> TaskState:
        """The record's state as a :class:`TaskState`."""
        if self._state_cache is None:
            self._state_cache = state_from_dict(self.state)
        return self._state_cache

    def sim_snapshot(self) -> Snapshot:
        """The simulator snapshot at the start of the record's slot (``MECSimulator.from_snapshot``)."""
        if self.snapshot is None:
            raise DataError(f"record {self.id} carries no simulator snapshot (it came from the official format)")
        return Snapshot.from_dict(self.snapshot)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in (*self.REQUIRED, "behaviour", "source_action")}
        if self.labels != "greedy":
            d["labels"] = self.labels
        if self.slot_decisions is not None:
            d["slot_decisions"] = [list(p) for p in self.slot_decisions]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Record":
        """Validate a JSON object into a Record; :class:`DataError` names the field."""
        for k in cls.REQUIRED:
            if k not in d:
                raise DataError(f"missing field '{k}'", field=k)
        for k in ("split", "scenario", "template", "prompt", "answer"):
            if not isinstance(d[k], str):
                raise DataError(f"field '{k}' = {d[k]!r} is not a string", field=k)
        if not isinstance(d["id"], (int, str)) or isinstance(d["id"], bool):
            raise DataError(f"field 'id' = {d['id']!r} is not an integer or a string", field="id")
        n = _int(d["n_servers"], "n_servers")
        state = state_from_dict(d["state"])
        if state.n_servers != n:
            raise DataError(f"field 'n_servers' = {n} but the state has {state.n_servers} servers", field="n_servers")
        oracle = _int(d["oracle_action"], "oracle_action")
        if not 0 <= oracle <= n:
            raise DataError(f"field 'oracle_action' = {oracle} is not in 0..{n}", field="oracle_action")
        costs = d["costs"]
        if not isinstance(costs, list) or len(costs) != n + 1:
            raise DataError(f"field 'costs' must be a list of {n + 1} numbers", field="costs")
        costs = [_num(c, f"costs[{i}]") for i, c in enumerate(costs)]
        snap = d["snapshot"]
        if snap is not None and not isinstance(snap, dict):
            raise DataError("field 'snapshot' is neither an object nor null", field="snapshot")
        src = d.get("source_action")
        dec = d.get("slot_decisions")
        if dec is not None:
            if not isinstance(dec, list) or any(not isinstance(p, list) or len(p) != 2 for p in dec):
                raise DataError("field 'slot_decisions' must be a list of [device, action] pairs", field="slot_decisions")
            dec = [
                (_int(p[0], f"slot_decisions[{i}][0]"), _int(p[1], f"slot_decisions[{i}][1]")) for i, p in enumerate(dec)
            ]
            for i, (_, a) in enumerate(dec):
                if not 0 <= a <= n:
                    raise DataError(f"field 'slot_decisions[{i}][1]' = {a} is not in 0..{n}", field="slot_decisions")
        labels = d.get("labels", "greedy")
        if not isinstance(labels, str):
            raise DataError(f"field 'labels' = {labels!r} is not a string", field="labels")
        return cls(
            id=d["id"],
            split=d["split"],
            scenario=d["scenario"],
            n_servers=n,
            template=d["template"],
            prompt=d["prompt"],
            answer=d["answer"],
            oracle_action=oracle,
            costs=costs,
            state=d["state"],
            device=_int(d["device"], "device"),
            snapshot=snap,
            behaviour=str(d.get("behaviour", "")),
            source_action=None if src is None else _int(src, "source_action"),
            labels=labels,
            slot_decisions=dec,
            _state_cache=state,
        )

    def rendered(self, template: Template | str, reasoning: bool = False) -> "Record":
        """This record with prompt and answer written in another template."""
        t = get_template(template)
        s = self.task_state()
        trace = t.reasoning_trace(s) if reasoning else None
        return dataclasses.replace(
            self,
            template=t.name,
            prompt=t.render_prompt(s),
            answer=t.render_answer(self.oracle_action, trace),
            _state_cache=s,
        )


def label_state(state: TaskState) -> tuple[int, list[float]]:
    """The oracle action and every action's cost (slots) of one state."""
    costs = action_costs(StateBatch.from_states([state]))[0]
    return int(oracle_from_costs(costs)), [float(c) for c in costs]


# ------------------------------------------------------- official format
def record_from_reference(obj: dict[str, Any], index: int, template: str | Template | None = None) -> Record:
    """An official record (``instruction``/``input``/``output``) parsed and labelled by our oracle.

    ``index`` is the 1-based record number (errors name it). The prompt and answer
    are rendered in ``template`` (default: ``paper-zh`` for Chinese keys, ``paper``
    for English ones, their ``-v2`` if the input has the fresh view's fields; without
    them those fields read 0); ``source_action`` keeps the file's own label.
    """
    if "input" not in obj:
        raise DataError("missing field 'input'", index, "input")
    raw = obj["input"]
    try:
        if isinstance(raw, dict):
            items = list(raw.items())
            state = parse_field_items(items, strict=True)
            zh = _is_zh(items)
        elif isinstance(raw, str):
            state = parse_prompt_text(raw)
            zh = _is_zh([(raw, "")])
        else:
            raise DataError("field 'input' is neither an object nor a string", index, "input")
    except TextError as err:
        name = f"input.{err.field}" if err.field else "input"
        if err.detail == "missing field":
            raise DataError(f"missing field '{name}'", index, name) from None
        raise DataError(f"field '{name}': {err.detail}", index, name) from None
    source = None
    out = obj.get("output")
    if out is not None:
        name = out.get("action_name") if isinstance(out, dict) else out
        if name is not None:
            source = parse_answer(name, state.n_servers)
            if source is None:
                raise DataError(
                    f"field 'output.action_name' = {name!r} is not an action of a {state.n_servers}-server state",
                    index,
                    "output.action_name",
                )
    if template is None:  # an input with the fresh view's fields (written by a -v2 template) keeps them
        labels = [k for k, _ in items] if isinstance(raw, dict) else [k for k, _ in split_prompt(raw)]
        fresh = any(V.FIELD_INDEX.get(V.norm_label(str(k))) in V.FRESH_FIELDS for k in labels)
        template = ("paper-zh" if zh else "paper") + ("-v2" if fresh else "")
    t = get_template(template)
    oracle, costs = label_state(state)
    return Record(
        id=obj["id"] if isinstance(obj.get("id"), (int, str)) and not isinstance(obj.get("id"), bool) else index - 1,
        split=str(obj.get("split", "reference")),
        scenario="reference",
        n_servers=state.n_servers,
        template=t.name,
        prompt=t.render_prompt(state),
        answer=t.render_answer(oracle),
        oracle_action=oracle,
        costs=costs,
        state=state_to_dict(state),
        device=-1,
        snapshot=None,
        source_action=source,
        _state_cache=state,
    )


def record_to_reference(record: Record, template: str | Template | None = None) -> dict[str, Any]:
    """The official form of a record: ``{"instruction", "input", "output": {"action_name"}}``.

    ``template`` must have a field form (``paper-zh``, ``paper`` or their ``-v2``, which add
    the fresh view's fields); default: the record's own if it has one, else ``paper-zh``.
    """
    if template is None:
        own = ("paper-zh", "paper", "paper-zh-v2", "paper-v2")
        template = record.template if record.template in own else "paper-zh"
    t = get_template(template)
    s = record.task_state()
    try:
        fields = t.render_fields(s)
    except TextError as err:
        raise DataError(f"the official format needs a template with fields (paper-zh or paper, or their -v2): {err}") from None
    return {
        "instruction": t.instruction,
        "input": fields,
        "output": {"action_name": t.answers(s.n_servers)[record.oracle_action]},
    }


# ------------------------------------------------------------------- files
def _open(path: Path, mode: str, gz: bool | None = None) -> IO[str]:
    if path.suffix == ".gz" if gz is None else gz:
        return io.TextIOWrapper(gzip.open(path, mode.replace("t", "") + "b"), encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _base_suffix(path: Path) -> str:
    return Path(path.stem).suffix if path.suffix == ".gz" else path.suffix


def write_records(
    path: str | Path,
    records: Iterable[Record],
    format: str = "jsonl",
    template: str | Template | None = None,
) -> int:
    """Stream ``records`` to ``path``; returns how many were written.

    ``format="jsonl"``: one :class:`Record` per line. ``format="reference"``: the
    official form (a JSON array if ``path`` ends in ``.json``, else JSONL), in
    ``template`` (see :func:`record_to_reference`). The file appears only when
    complete (written to a temporary name, then renamed).
    """
    if format not in ("jsonl", "reference"):
        raise DataError(f"unknown format '{format}' (jsonl or reference)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    array = format == "reference" and _base_suffix(path) == ".json"
    n = 0
    try:
        with _open(tmp, "wt", gz=path.suffix == ".gz") as f:
            if array:
                f.write("[")
            for r in records:
                if format == "jsonl":
                    f.write(json.dumps(r.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False))
                    f.write("\n")
                elif array:
                    f.write(",\n" if n else "\n")
                    f.write(json.dumps(record_to_reference(r, template), ensure_ascii=False, indent=2))
                else:
                    f.write(json.dumps(record_to_reference(r, template), ensure_ascii=False) + "\n")
                n += 1
            if array:
                f.write("\n]\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


def _json_values(f: IO[str], array: bool) -> Iterator[tuple[Any, DataError | None]]:
    """Decode consecutive JSON values (of an array if ``array``) from a text stream, chunk by chunk."""
    dec = json.JSONDecoder()
    buf, pos, eof, k = "", 0, False, 0
    if array:
        buf = f.read(1 << 16)
        pos = buf.index("[") + 1
    while True:
        while True:  # skip separators
            while pos < len(buf) and buf[pos] in " \t\r\n" + ("," if array else ""):
                pos += 1
            if pos < len(buf) or eof:
                break
            buf, pos = f.read(1 << 20), 0
            eof = buf == ""
        if pos >= len(buf):
            if array:
                yield None, DataError("the JSON array is not closed with ']'", k + 1, "")
            return
        if array and buf[pos] == "]":
            return
        try:
            obj, end = dec.raw_decode(buf, pos)
        except json.JSONDecodeError as err:
            if not eof:  # maybe the value continues in the next chunk
                more = f.read(1 << 20)
                eof = more == ""
                buf = buf[pos:] + more
                pos = 0
                continue
            yield None, DataError(f"invalid JSON ({err.msg})", k + 1, "")
            return
        k += 1
        pos = end
        yield obj, None


class RecordReader:
    """Iterator over the records of a file; ``n_read`` good records, ``n_bad`` skipped ones.

    With ``skip_bad`` a malformed record is counted (``n_bad``, first messages in
    ``errors``) and skipped; otherwise it raises :class:`DataError` naming the record
    number and the field.
    """

    def __init__(self, path: str | Path, skip_bad: bool = False, template: str | Template | None = None) -> None:
        from comllm.outputs import input_problem

        self.path = Path(path)
        problem = input_problem(self.path)
        if problem:  # a folder, a FIFO or /dev/null is named as what it is
            raise DataError(f"data file '{path}' {problem}")
        self.skip_bad = skip_bad
        self.template = get_template(template) if template is not None else None
        self.n_read = 0
        self.n_bad = 0
        self.errors: list[str] = []
        self._it = self._records()

    def __iter__(self) -> "RecordReader":
        return self

    def __next__(self) -> Record:
        try:
            return next(self._it)
        except (OSError, EOFError, UnicodeDecodeError) as err:  # not text, not gzip, truncated gzip
            raise DataError(f"cannot read '{self.path}': {err}") from None

    def _bad(self, err: DataError) -> None:
        if not self.skip_bad:
            raise err
        self.n_bad += 1
        if len(self.errors) < 20:
            self.errors.append(str(err))

    def _convert(self, obj: Any, k: int) -> Record:
        try:
            return self._convert_one(obj, k)
        except DataError as err:
            if len(str(err)) <= MAX_MESSAGE:
                raise
            room = MAX_MESSAGE - len(str(err)) + len(err.detail)  # after "record K: "
            raise DataError(shorten(err.detail, room), err.record, err.field) from None  # no 27 KB echo
        except (ValueError, ArithmeticError, TypeError, RecursionError) as err:  # a reader bug must not end the run
            raise DataError(f"cannot read the record ({type(err).__name__}: {shorten(str(err), 160)})", k) from None

    def _convert_one(self, obj: Any, k: int) -> Record:
        if not isinstance(obj, dict):
            raise DataError("not a JSON object", k)
        if "prompt" in obj or "oracle_action" in obj:
            try:
                rec = Record.from_dict(obj)
            except DataError as err:
                raise DataError(str(err), k, err.field) from None
            return rec.rendered(self.template) if self.template is not None else rec
        if "input" in obj or "instruction" in obj:
            return record_from_reference(obj, k, self.template)
        raise DataError(
            "unknown record: neither our fields (id, prompt, answer, ...) nor the official ones "
            "(instruction, input, output); missing field 'input'",
            k,
            "input",
        )

    def _records(self) -> Iterator[Record]:
        with _open(self.path, "rt") as f:
            head = f.read(1 << 16)
            first = head.lstrip()[:1]
            f.seek(0)
            if not first:
                return
            jsonl = False
            if first == "{":
                line = head.lstrip().split("\n", 1)[0]
                try:
                    jsonl = isinstance(json.loads(line), dict)
                except json.JSONDecodeError:
                    jsonl = False
            elif first != "[":
                jsonl = True  # not JSON at all: report record 1 as invalid JSON
            if jsonl:
                k = 0
                for line_no, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    k += 1
                    try:
                        try:
                            obj = json.loads(line)
                        except json.JSONDecodeError as err:
                            raise DataError(f"invalid JSON on line {line_no} ({err.msg})", k, "") from None
                        rec = self._convert(obj, k)
                    except DataError as err:
                        self._bad(err)
                        continue
                    self.n_read += 1
                    yield rec
                return
            k = 0
            for obj, err in _json_values(f, array=first == "["):
                k += 1
                if err is not None:  # inside one JSON document there is no next record to resume at
                    raise DataError(err.detail + " (the rest of the JSON document cannot be read)", err.record)
                try:
                    rec = self._convert(obj, k)
                except DataError as e:
                    self._bad(e)
                    continue
                self.n_read += 1
                yield rec


def read_records(
    path: str | Path, skip_bad: bool = False, template: str | Template | None = None
) -> RecordReader:
    """Iterate the records of a JSONL file of ours or an official-format JSON/JSONL file.

    ``template`` re-renders every prompt and answer in that template (default: as stored;
    official records in ``paper-zh`` or ``paper`` after their language).
    """
    return RecordReader(path, skip_bad=skip_bad, template=template)
