"""The semantic state a policy sees when a task arrives: one field table, two views.

* :class:`TaskState` (with one :class:`ServerView` per server): one task, plain typed
  fields; what the text module renders and parses and what records store;
* :class:`StateBatch`: a struct of numpy arrays over a batch of tasks that share one
  server count; what the cost model, policies and the simulator use.

The fields of :class:`TaskState` and :class:`ServerView` are the schema: each carries
its unit, its bounds, its array name in :class:`StateBatch` and how a template rounds
it (:class:`FieldSpec`, read with :func:`task_fields` / :func:`server_fields`).
:class:`StateBatch`, the record (de)serialisation (:mod:`comllm.data.records`), the
value checks of records and the template quantizer are derived from it, so adding a
state field is one line here (a field with a default, so that older records still read).

Units: slots for times, Mbit for data, Mbit/slot for rates, GHz for CPUs, cycles per
bit for computation density, seconds for ``slot_s``. Actions are integers: 0 = run
locally, ``j`` in 1..N = offload to server ``j``.

The *fresh view* (docs/model.md §5): per server, ``incoming_mbit`` is the
Mbit still to send of the tasks bound for it that are in devices' uplinks (waiting or
transmitting) and ``incoming_tasks`` their number; under ``decisions=sequential`` both
also count the tasks assigned to it earlier in the same slot (whole size). Per task,
``slot_arrivals`` is the number of tasks arriving in the slot (this one included) and
``slot_pending`` the number of the slot's other tasks whose decisions this one does not
see (all of them under ``simultaneous``, those decided after it under ``sequential``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from comllm.scenario import SERVER_TYPE_CODES, SERVER_TYPE_NAMES

LOCAL = 0

#: how a template rounds a field: ``quantity`` (the template's decimals), ``constant``
#: (at least the constant decimals), ``count`` (an integer), ``label`` (a name, not rounded),
#: ``meta`` (never in a prompt: device index, slot)
Quantize = Literal["quantity", "constant", "count", "label", "meta"]


@dataclass(frozen=True)
class FieldSpec:
    """What the schema says of one state field (the ``metadata`` of its dataclass field)."""

    name: str  # attribute of TaskState / ServerView
    array: str  # attribute of StateBatch
    kind: type  # float, int or str
    unit: str
    doc: str
    quantize: Quantize
    ge: float | None = None  # value must be >= ge (records are checked)
    gt: float | None = None  # value must be > gt
    default: Any = None  # value of records and prompts that lack the field (with has_default)
    has_default: bool = False  # False: the field is required

    def check(self, value: float) -> str | None:
        """Why ``value`` is out of this field's range, or None."""
        if self.gt is not None and not value > self.gt:
            return f"must be > {self.gt:g}"
        if self.ge is not None and not value >= self.ge:
            return f"must be >= {self.ge:g}"
        return None


def _f(
    unit: str,
    doc: str,
    quantize: Quantize = "quantity",
    *,
    array: str = "",
    ge: float | None = None,
    gt: float | None = None,
    default: Any = dataclasses.MISSING,
) -> Any:
    spec = {"unit": unit, "doc": doc, "quantize": quantize, "array": array, "ge": ge, "gt": gt, "default": default}
    if default is dataclasses.MISSING:
        return field(metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


@dataclass(frozen=True)
class ServerView:
    """What the policy sees of one edge server."""

    type: str = _f("", "server type, one of scenario.SERVER_TYPE_NAMES", "label", array="server_type")
    cpu_ghz: float = _f("GHz", "CPU frequency", "constant", array="server_ghz", gt=0)
    cycles_per_bit: float = _f("cycles/bit", "computation density", "constant", array="server_cycles_per_bit", gt=0)
    active: int = _f("queues", "non-empty device queues at this server now", "count", ge=0)
    queued_mbit: float = _f("Mbit", "bits still to compute at this server", array="queued", ge=0)
    history: tuple[float, ...] = _f("queues", "active count over the last slots, oldest first", "constant", ge=0)
    incoming_mbit: float = _f(
        "Mbit", "still to send by the tasks bound here in devices' uplinks", array="incoming", ge=0, default=0.0
    )
    incoming_tasks: int = _f("tasks", "tasks bound here in devices' uplinks", "count", array="incoming_n", ge=0, default=0)


@dataclass(frozen=True)
class TaskState:
    """The state of the MEC system as seen by the device whose task just arrived."""

    task_size: float = _f("Mbit", "size of the arriving task", gt=0)
    max_delay: int = _f("slots", "deadline after arrival", "count", gt=0)
    local_wait: float = _f("slots", "until the local CPU queue is free", ge=0)
    tx_wait: float = _f("slots", "until the uplink queue is free", ge=0)
    upload_rate: float = _f("Mbit/slot", "current uplink rate", gt=0)
    slot_s: float = _f("s", "slot length", "constant", gt=0)
    drop_penalty: float = _f("", "reward penalty of a drop", "constant", ge=0)
    device_ghz: float = _f("GHz", "device CPU frequency", "constant", gt=0)
    device_cycles_per_bit: float = _f("cycles/bit", "device computation density", "constant", gt=0)
    device_mbps: float = _f("Mbit/s", "nominal uplink rate", "constant", gt=0)
    servers: tuple[ServerView, ...]
    device: int = _f("", "index of the device in its simulator (-1: unknown)", "meta", default=-1)
    slot: int = _f("slots", "simulator slot (-1: unknown)", "meta", default=-1)
    slot_arrivals: int = _f("tasks", "tasks arriving in this slot, this one included", "count", ge=0, default=0)
    slot_pending: int = _f("tasks", "the slot's other tasks whose decisions this one does not see", "count", ge=0, default=0)

    @property
    def n_servers(self) -> int:
        return len(self.servers)

    @property
    def n_actions(self) -> int:
        return len(self.servers) + 1


def _specs(cls: type) -> tuple[FieldSpec, ...]:
    out = []
    for f in dataclasses.fields(cls):
        if "spec" not in f.metadata:
            continue
        m = f.metadata["spec"]
        kind = {"float": float, "int": int, "str": str}.get(str(f.type), None)
        if kind is None:  # tuple[float, ...] (history)
            kind = float
        rest = {k: m[k] for k in m if k not in ("array", "default")}
        has = m["default"] is not dataclasses.MISSING
        out.append(
            FieldSpec(
                name=f.name, array=m["array"] or f.name, kind=kind, default=m["default"] if has else None,
                has_default=has, **rest,
            )
        )
    return tuple(out)


_TASK_FIELDS = _specs(TaskState)
_SERVER_FIELDS = _specs(ServerView)


def task_fields() -> tuple[FieldSpec, ...]:
    """The per-task fields of the schema, in declaration order."""
    return _TASK_FIELDS


def server_fields() -> tuple[FieldSpec, ...]:
    """The per-server fields of the schema (``history`` is (H,) per server), in declaration order."""
    return _SERVER_FIELDS


def _array_dtype(spec: FieldSpec) -> type:
    return np.float64 if spec.kind is float else np.int64


class StateBatch:
    """A batch of :class:`TaskState` with one server count N, as arrays named by the schema.

    Shapes: ``(B,)`` per task field, ``(B, N)`` per server field (``server_type``: int codes
    of ``SERVER_TYPE_NAMES``), ``(B, N, H)`` for ``history``. Every schema array is a
    keyword of the constructor; one with a default (the fresh-view fields, ``device``,
    ``slot``) may be left out and is filled with it.
    """

    ARRAYS: tuple[str, ...] = tuple(s.array for s in (*_TASK_FIELDS, *_SERVER_FIELDS))

    # (annotations for readers and type checkers; the constructor sets exactly ARRAYS)
    task_size: np.ndarray
    max_delay: np.ndarray
    local_wait: np.ndarray
    tx_wait: np.ndarray
    upload_rate: np.ndarray
    slot_s: np.ndarray
    drop_penalty: np.ndarray
    device_ghz: np.ndarray
    device_cycles_per_bit: np.ndarray
    device_mbps: np.ndarray
    device: np.ndarray
    slot: np.ndarray
    slot_arrivals: np.ndarray
    slot_pending: np.ndarray
    server_type: np.ndarray
    server_ghz: np.ndarray
    server_cycles_per_bit: np.ndarray
    active: np.ndarray
    queued: np.ndarray
    history: np.ndarray
    incoming: np.ndarray
    incoming_n: np.ndarray

    def __init__(self, **arrays: np.ndarray) -> None:
        if arrays.keys() == _ARRAY_SET:  # every array given (the simulator's hot path): no checks
            self.__dict__.update(arrays)
            return
        unknown = set(arrays) - set(self.ARRAYS)
        if unknown:
            raise TypeError(f"StateBatch got unknown arrays {sorted(unknown)} (known: {', '.join(self.ARRAYS)})")
        b = len(arrays["task_size"])
        n = np.shape(arrays["server_ghz"])[1] if np.ndim(arrays["server_ghz"]) == 2 else 0
        for spec in _TASK_FIELDS:
            v = arrays.get(spec.array)
            if v is None or len(v) != b:
                if not spec.has_default:
                    raise TypeError(f"StateBatch needs the array '{spec.array}'")
                v = np.full(b, spec.default, dtype=_array_dtype(spec))
            setattr(self, spec.array, v)
        for spec in _SERVER_FIELDS:
            v = arrays.get(spec.array)
            if v is None:
                if not spec.has_default:
                    raise TypeError(f"StateBatch needs the array '{spec.array}'")
                v = np.full((b, n), spec.default, dtype=_array_dtype(spec))
            setattr(self, spec.array, v)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "StateBatch":
        """A batch on exactly :attr:`ARRAYS` (every one given, shapes consistent), unchecked: the
        simulator's hot path. ``arrays`` becomes the batch's attributes (no copy)."""
        obj = object.__new__(cls)
        obj.__dict__ = arrays
        return obj

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name (the constructor's keywords)."""
        return {k: getattr(self, k) for k in self.ARRAYS}

    def __len__(self) -> int:
        return len(self.task_size)

    def __repr__(self) -> str:
        return f"StateBatch(B={len(self)}, N={self.n_servers})"

    @property
    def n_servers(self) -> int:
        return self.server_ghz.shape[1]

    @property
    def n_actions(self) -> int:
        return self.n_servers + 1

    def subset(self, idx: np.ndarray | slice | Sequence[int]) -> "StateBatch":
        """The tasks at ``idx`` as a new batch."""
        return StateBatch(**{k: v[idx] for k, v in self.arrays().items()})

    @classmethod
    def concat(cls, batches: Sequence["StateBatch"]) -> "StateBatch":
        """The tasks of ``batches`` (same server count) one after the other, as one batch."""
        if len({b.n_servers for b in batches}) > 1:
            raise ValueError(f"cannot concatenate batches of {sorted({b.n_servers for b in batches})} servers")
        return cls.from_arrays({k: np.concatenate([getattr(b, k) for b in batches]) for k in cls.ARRAYS})

    def state(self, i: int) -> TaskState:
        """Task ``i`` as a :class:`TaskState`."""
        servers = []
        for j in range(self.n_servers):
            kw: dict[str, Any] = {}
            for spec in _SERVER_FIELDS:
                v = getattr(self, spec.array)[i, j]
                if spec.name == "type":
                    kw["type"] = SERVER_TYPE_NAMES[int(v)]
                elif spec.name == "history":
                    kw["history"] = tuple(float(x) for x in v)
                else:
                    kw[spec.name] = spec.kind(v)
            servers.append(ServerView(**kw))
        kw = {spec.name: spec.kind(getattr(self, spec.array)[i]) for spec in _TASK_FIELDS}
        return TaskState(servers=tuple(servers), **kw)

    def states(self) -> list[TaskState]:
        return [self.state(i) for i in range(len(self))]

    @classmethod
    def from_states(cls, states: Iterable[TaskState]) -> "StateBatch":
        """Stack task states that share one server count and history length."""
        states = list(states)
        if not states:
            raise ValueError("StateBatch.from_states needs at least one state")
        n = states[0].n_servers
        if any(s.n_servers != n for s in states):
            raise ValueError("all states of a StateBatch must have the same number of servers")
        b = len(states)
        arrays: dict[str, np.ndarray] = {}
        for spec in _TASK_FIELDS:
            arrays[spec.array] = np.array([getattr(s, spec.name) for s in states], dtype=_array_dtype(spec))
        for spec in _SERVER_FIELDS:
            if spec.name == "type":
                v = [[SERVER_TYPE_CODES[sv.type] for sv in s.servers] for s in states]
                arrays[spec.array] = np.array(v, dtype=np.int64).reshape(b, n)
            elif spec.name == "history":
                v = [[sv.history for sv in s.servers] for s in states]
                arrays[spec.array] = np.array(v, dtype=np.float64).reshape(b, n, -1)
            else:
                v = [[getattr(sv, spec.name) for sv in s.servers] for s in states]
                arrays[spec.array] = np.array(v, dtype=_array_dtype(spec)).reshape(b, n)
        return cls(**arrays)


_ARRAY_SET = frozenset(StateBatch.ARRAYS)


def group_by_servers(states: Sequence[TaskState]) -> dict[int, list[int]]:
    """Indices of ``states`` grouped by server count (batches need one N)."""
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(states):
        groups.setdefault(s.n_servers, []).append(i)
    return groups
