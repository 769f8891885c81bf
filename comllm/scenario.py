"""Scenarios: typed, validated configuration of an MEC system, with named presets.

Units used throughout comllm:

* time in slots (``slot_s`` seconds each, default 0.1 s);
* data in Mbit; rates in Mbit per slot unless a name says ``mbps``;
* CPU frequency in GHz; computation density in cycles per bit
  (297 cycles/bit = 0.297 Gcycles/Mbit).

A scenario is a pydantic model, so every field is type-checked and an invalid
value raises :class:`ScenarioError` naming the field and the value.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from comllm.errors import ComllmError, FieldError, format_validation_error, short

#: Edge-server types (docs/model.md §1) with their default CPU frequency (GHz).
SERVER_TYPES: dict[str, float] = {
    "high-performance": 41.8,
    "standard": 30.0,
    "energy-saving": 22.0,
}
#: Stable integer code of each server type (used in arrays and observations).
SERVER_TYPE_CODES: dict[str, int] = {name: i for i, name in enumerate(SERVER_TYPES)}
SERVER_TYPE_NAMES: tuple[str, ...] = tuple(SERVER_TYPES)
#: most edge servers a scenario may have (a 1000-server record is ~0.4 MB of text)
MAX_SERVERS = 1000
#: largest scenario file read (a scenario is a few hundred bytes of YAML)
MAX_SCENARIO_BYTES = 1 << 20


class ScenarioError(ComllmError, ValueError):
    """An invalid scenario: the message names the field and the offending value."""


class _Strict(BaseModel):
    # floats must be finite (no .inf / .nan); numbers must not be booleans (true is not 1)
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bools(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, bool) and info.field_name is not None:
            if cls.model_fields[info.field_name].annotation in (int, float):
                raise ValueError("a boolean is not a number")
        return v


class ServerSpec(_Strict):
    """One edge server: its type label and CPU frequency (GHz)."""

    type: Literal["high-performance", "standard", "energy-saving"] = "standard"
    ghz: float = Field(default=30.0, gt=0, description="CPU frequency, GHz")

    @classmethod
    def of_type(cls, type_: str) -> "ServerSpec":
        return cls(type=type_, ghz=SERVER_TYPES[type_])


class BurstyArrivals(_Strict):
    """Markov-modulated Bernoulli arrivals: each device is in a calm or a burst phase.

    In the burst phase a device's per-slot arrival probability is ``burst_prob``,
    in the calm phase it is the scenario's ``arrival_prob``. Phase switches are
    per device and per slot with the given probabilities.
    """

    burst_prob: float = Field(default=0.8, ge=0, le=1)
    p_enter: float = Field(default=0.05, ge=0, le=1, description="P(calm -> burst) per slot")
    p_leave: float = Field(default=0.2, ge=0, le=1, description="P(burst -> calm) per slot")


class ChannelSpec(_Strict):
    """Per-device uplink channel, redrawn every slot.

    * ``static``: the rate is always ``uplink_mbps``.
    * ``gauss-markov``: rate factor ``g`` follows an AR(1) process around 1,
      ``g' = 1 + rho (g - 1) + sqrt(1 - rho^2) sigma eps``, clipped to
      ``[min_factor, max_factor]``.
    * ``rayleigh``: complex gain ``h' = rho h + sqrt(1 - rho^2) e``, ``e ~ CN(0, 1)``;
      the rate factor is ``log2(1 + snr |h|^2) / log2(1 + snr)``, clipped likewise.
    """

    model: Literal["static", "gauss-markov", "rayleigh"] = "static"
    rho: float = Field(default=0.9, ge=0, le=1, description="slot-to-slot correlation")
    sigma: float = Field(default=0.2, ge=0, description="std of the gauss-markov factor")
    snr_db: float = Field(default=10.0, description="mean SNR of the rayleigh model, dB")
    min_factor: float = Field(default=0.2, gt=0)
    max_factor: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _range(self) -> "ChannelSpec":
        if self.min_factor > self.max_factor:
            raise FieldError("min_factor", self.min_factor, f"is above max_factor={self.max_factor}")
        if not -50 <= self.snr_db <= 100:  # below -50 dB log2(1 + snr) is 0 in floating point
            raise FieldError("snr_db", self.snr_db, "must be between -50 and 100 dB")
        return self


class Scenario(_Strict):
    """An MEC system: devices, servers, arrivals, channel and physics.

    Offered load (Mbit/slot) is ``n_devices * arrival_prob * mean task size``; the
    system's capacity is ``n_devices * local_rate + sum(server rates)`` (see
    :meth:`figures`).
    """

    name: str = "custom"
    n_devices: int = Field(default=20, ge=1, le=10_000, description="number of mobile devices M")
    servers: tuple[ServerSpec, ...] = Field(default=(ServerSpec(),))
    slot_s: float = Field(default=0.1, gt=0, description="slot length, seconds")
    arrival_prob: float = Field(default=0.3, ge=0, le=1, description="P(task) per device per slot")
    size_min: float = Field(default=2.0, gt=0, description="smallest task, Mbit")
    size_max: float = Field(default=5.0, gt=0, description="largest task, Mbit")
    bursty: BurstyArrivals | None = None
    deadline: int = Field(default=10, ge=1, le=1000, description="max delay, slots after arrival")
    cycles_per_bit: float = Field(default=297.0, gt=0, description="computation density")
    device_ghz: float = Field(default=2.5, gt=0, description="device CPU frequency, GHz")
    uplink_mbps: float = Field(default=14.0, gt=0, description="nominal uplink rate, Mbit/s")
    channel: ChannelSpec = ChannelSpec()
    history_len: int = Field(default=10, ge=1, le=1000, description="slots of load history shown")
    drop_penalty: float = Field(default=100.0, ge=0, description="reward penalty of a drop")
    decisions: Literal["simultaneous", "sequential"] = Field(
        default="simultaneous",
        description=(
            "decision protocol: 'simultaneous' decides a slot's arrivals together from the slot-start "
            "state; 'sequential' decides them one at a time in a seeded random order, each seeing the "
            "earlier decisions of the slot"
        ),
    )
    slot_rules: Literal["fluid", "tang-wong"] = Field(
        default="fluid",
        description=(
            "'fluid': fractional latency, capacity passes to the next task mid-slot, uploads ending in "
            "the deadline slot drop at the uplink; 'tang-wong': the three rules of Tang & Wong's code "
            "(whole-slot delays, tasks start at slot boundaries, late uploads drop at the server)"
        ),
    )

    @field_validator("servers")
    @classmethod
    def _nonempty(cls, v: tuple[ServerSpec, ...]) -> tuple[ServerSpec, ...]:
        if len(v) == 0:
            raise ValueError("a scenario needs at least one server")
        if len(v) > MAX_SERVERS:
            raise ValueError(f"{len(v)} servers is more than the limit of {MAX_SERVERS}")
        return v

    @model_validator(mode="after")
    def _sizes(self) -> "Scenario":
        if self.size_min > self.size_max:
            raise FieldError("size_min", self.size_min, f"is above size_max={self.size_max}")
        # finite inputs can still give infinite or zero rates (1e308 GHz, 1e-300 s slots)
        rates = {"device_ghz": self.local_rate, "uplink_mbps": self.uplink_rate}
        rates.update({f"servers.{j}.ghz": r for j, r in enumerate(self.server_rates())})
        for name, rate in rates.items():
            if not (math.isfinite(rate) and rate > 0):
                value = self.uplink_mbps if name == "uplink_mbps" else self.device_ghz
                if name.startswith("servers."):
                    value = self.servers[int(name.split(".")[1])].ghz
                raise FieldError(
                    name, value, f"gives a rate of {rate:g} Mbit/slot (slot_s={self.slot_s:g}, "
                    f"cycles_per_bit={self.cycles_per_bit:g}): not a finite positive number"
                )
        if not math.isfinite(self.size_min + self.size_max):
            raise FieldError("size_max", self.size_max, "is too large to compute with")
        return self

    # ---- derived physics -------------------------------------------------
    @property
    def n_servers(self) -> int:
        return len(self.servers)

    @property
    def density(self) -> float:
        """Computation density in Gcycles per Mbit."""
        return self.cycles_per_bit / 1000.0

    @property
    def local_rate(self) -> float:
        """Mbit a device computes per slot."""
        return self.device_ghz * self.slot_s / self.density

    @property
    def uplink_rate(self) -> float:
        """Nominal uplink, Mbit per slot."""
        return self.uplink_mbps * self.slot_s

    def server_rates(self) -> list[float]:
        """Mbit each server computes per slot (shared among its active queues)."""
        return [s.ghz * self.slot_s / self.density for s in self.servers]

    def figures(self) -> dict[str, float]:
        """Offered load and capacity, Mbit/slot."""
        mean_size = 0.5 * (self.size_min + self.size_max)
        p = self.arrival_prob
        if self.bursty is not None:
            b = self.bursty
            frac = b.p_enter / (b.p_enter + b.p_leave) if (b.p_enter + b.p_leave) > 0 else 0.0
            p = (1 - frac) * p + frac * b.burst_prob
        offered = self.n_devices * p * mean_size
        local = self.n_devices * self.local_rate
        edge = sum(self.server_rates())
        return {
            "offered_mbit_per_slot": offered,
            "local_capacity": local,
            "edge_capacity": edge,
            "uplink_capacity": self.n_devices * self.uplink_rate,
            "load_factor": offered / (local + edge),
        }

    # ---- construction -----------------------------------------------------
    def with_overrides(self, overrides: dict[str, Any] | list[str]) -> "Scenario":
        """A copy with ``key=value`` overrides (dotted keys reach nested fields)."""
        if isinstance(overrides, list):
            overrides = parse_overrides(overrides)
        data = self.model_dump()
        for key, value in overrides.items():
            _set_dotted(data, key, value)
        return make_scenario(data)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        if part == "bursty" and node.get(part) is None:
            node[part] = {}
        if not isinstance(node.get(part), dict):
            raise ScenarioError(f"unknown scenario key '{'.'.join(parts[: i + 1])}' (in '{key}')")
        node = node[part]
    if parts[-1] not in node and not (len(parts) == 1 and parts[0] in Scenario.model_fields):
        nested = {"channel": ChannelSpec, "bursty": BurstyArrivals}
        parent = parts[-2] if len(parts) > 1 else None
        if parent not in nested or parts[-1] not in nested[parent].model_fields:
            raise ScenarioError(f"unknown scenario key '{key}'")
    node[parts[-1]] = value


def split_override_set(sets: str) -> list[str]:
    """The ``key=value`` items of one ``;``-separated set (``'arrival_prob=0.5;decisions=sequential'``:
    an entry of ``comllm improve --mix`` or of the pipeline's ``data.sft_sets``)."""
    return [kv.strip() for kv in sets.split(";") if kv.strip()]


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parse ``["arrival_prob=0.5", "servers=[standard, energy-saving]"]`` (values are YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ScenarioError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if key == "servers":
            value = _servers_from_any(value)
        out[key] = value
    return out


def _servers_from_any(value: Any) -> Any:
    """Accept a list of type names, of GHz numbers, or of {type, ghz} dicts."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        return value
    out = []
    for v in value:
        if isinstance(v, str) and v in SERVER_TYPES:
            out.append({"type": v, "ghz": SERVER_TYPES[v]})
        elif isinstance(v, str):
            raise ScenarioError(f"unknown server type '{v}' (known: {', '.join(SERVER_TYPES)})")
        else:
            out.append(v)
    return out


def make_scenario(data: dict[str, Any]) -> Scenario:
    """Validate a dict into a :class:`Scenario`; errors become :class:`ScenarioError`."""
    data = copy.deepcopy(data)
    if "servers" in data:
        data["servers"] = _servers_from_any(data["servers"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(format_validation_error(err, "scenario")) from None


def _mix(n: int) -> tuple[ServerSpec, ...]:
    """A heterogeneous mix cycling high-performance, standard, energy-saving."""
    order = ("high-performance", "standard", "energy-saving")
    return tuple(ServerSpec.of_type(order[i % 3]) for i in range(n))


_PAPER_COMMON: dict[str, Any] = {
    # 30 devices at p = 0.3 offer 31.5 Mbit/slot; see README "Scenarios".
    "n_devices": 30,
    "arrival_prob": 0.3,
    "channel": {"model": "gauss-markov", "rho": 0.9, "sigma": 0.2},
}

PRESETS: dict[str, dict[str, Any]] = {
    "paper-6": {"name": "paper-6", **_PAPER_COMMON, "servers": [s.model_dump() for s in _mix(6)]},
    "paper-11": {"name": "paper-11", **_PAPER_COMMON, "servers": [s.model_dump() for s in _mix(11)]},
    "tang-wong": {
        "name": "tang-wong",
        "n_devices": 50,
        "arrival_prob": 0.3,
        "servers": [{"type": "high-performance", "ghz": 41.8}] * 5,
        "channel": {"model": "static"},
    },
    "small": {
        "name": "small",
        "n_devices": 5,
        "arrival_prob": 0.3,
        "servers": [s.model_dump() for s in _mix(3)],
        "channel": {"model": "static"},
    },
}


def _read_scenario_file(path: Path) -> dict[str, Any]:
    """The mapping of a scenario YAML file; every problem is one :class:`ScenarioError` naming the file."""
    from comllm.outputs import input_problem

    problem = input_problem(path)
    if problem:
        raise ScenarioError(f"scenario file '{path}' {problem}")
    if path.stat().st_size > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"scenario file '{path}' is {path.stat().st_size} bytes, more than a scenario ({MAX_SCENARIO_BYTES})")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScenarioError(f"scenario file '{path}' is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ScenarioError(f"cannot read scenario file '{path}': {err.strerror or err}") from None
    try:
        raw = yaml.safe_load(text)  # safe: a !!python tag is an error, never code
    except yaml.YAMLError as err:
        raise ScenarioError(f"scenario file '{path}' is not valid YAML: {_yaml_problem(err)}") from None
    except RecursionError:
        raise ScenarioError(f"scenario file '{path}' is nested too deeply") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ScenarioError(f"scenario file '{path}' is not a mapping of keys to values")
    return raw


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line of a YAML error: what, and where (line, column)."""
    what = getattr(err, "problem", None) or (str(err).splitlines() or ["unreadable"])[0]
    mark = getattr(err, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    text = " ".join(str(what).split())
    return (text if len(text) <= 160 else text[:157] + "...") + where


def load_scenario(name_or_path: str, overrides: list[str] | dict[str, Any] | None = None) -> Scenario:
    """A preset by name, or a YAML file (which may name a ``base`` preset), plus overrides."""
    if name_or_path in PRESETS:
        data = copy.deepcopy(PRESETS[name_or_path])
    elif name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).exists():
        path = Path(name_or_path)
        raw = _read_scenario_file(path)
        base = raw.pop("base", None)
        if base is not None:
            if not isinstance(base, str) or base not in PRESETS:
                file = isinstance(base, str) and (base.endswith((".yaml", ".yml")) or Path(base).exists())
                what = "names a file: base must be a preset" if file else "is not a preset"
                raise ScenarioError(
                    f"scenario file '{name_or_path}': 'base' = {short(base)} {what} (known: {', '.join(PRESETS)})"
                )
            data = copy.deepcopy(PRESETS[base])
        else:
            data = {}
        data.update(raw)
        data.setdefault("name", path.stem)
    else:
        raise ScenarioError(f"unknown scenario '{name_or_path}' (presets: {', '.join(PRESETS)})")
    scen = make_scenario(data)
    if overrides:
        scen = scen.with_overrides(overrides)
    return scen
