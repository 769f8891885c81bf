"""The tolerant reader of prompts: English (any paraphrase, unit or order of :mod:`vocab`) and Chinese.

A prompt is a list of ``label: value`` items (lines of a prompt, or the ``input``
dict of an official record). Items are recognised by label, so their order does
not matter; servers are recognised by their id (``server 3``, ``边缘服务器3``),
so their order does not matter either. Values are ``number unit`` (any unit of
the right dimension, converted to the canonical one) or, for the device and the
servers, comma-separated attributes. Errors are :class:`TextError` naming the field.
The fresh-view fields (``vocab.FRESH_FIELDS`` / ``FRESH_ATTRS``, written by the ``-v2``
templates) may be absent: they then read as 0, as the schema's defaults say.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from comllm.state import ServerView, TaskState
from comllm.text import vocab as V
from comllm.errors import short
from comllm.text.numbers import NUMBER, find_numbers, first_number, parse_number
from comllm.text.template import TextError

_SERVER_KEY = re.compile(r"^(?:edge )?server ?#?(\d+)$|^(?:边缘)?服务器 ?(\d+)$")
_LOOKS_LIKE_SERVER = re.compile(r"server|服务器")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_SPLIT_ATTRS = re.compile(r"[,;]")
_NUMS_AND_SPACE = re.compile(rf"{NUMBER}|\s+")

_DEFAULT_UNIT = {
    "data": ("", 1.0),
    "time": ("slot", 1.0),
    "rate": ("slot", 1.0),
    "freq": ("", 1.0),
    "density": ("", 1.0),
}
_DIM_WORDS = {
    "data": "a data size",
    "time": "a time",
    "rate": "a data rate",
    "freq": "a frequency",
    "density": "a computation density",
}
#: attribute inferred from a unit when a value comes without a label ("297 cycles/bit")
_ATTR_BY_DIM = {"freq": "cpu_ghz", "density": "cycles_per_bit", "data": "queued_mbit"}
_SERVER_ATTRS = ("type", "cpu_ghz", "cycles_per_bit", "active", "queued_mbit", "history")
_FRESH_SERVER_ATTRS = tuple(V.FRESH_ATTRS)  # optional: a server without them reads 0 (the fresh view)
_DEVICE_ATTRS = ("cpu_ghz", "cycles_per_bit", "uplink_mbps")


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


class _Reader:
    """Reads one prompt; ``zh`` selects the language of the field names in errors."""

    def __init__(self, zh: bool) -> None:
        self.zh = zh
        self.slot_s = 0.1

    def name(self, key: str) -> str:
        en, zh = V.ALL_FIELDS[key]
        return zh if self.zh else en[0]

    def attr_name(self, key: str) -> str:
        en, zh = V.ALL_ATTRS[key]
        return zh if self.zh else en[0]

    # --------------------------------------------------------------- values
    def quantity(self, raw: Any, dim: str, field: str, default: str | None = None) -> tuple[float, str, float]:
        """``(number, base, factor)`` of a ``number unit`` value of dimension ``dim``.

        Without a unit the value is in the canonical unit (base ``default`` if given).
        """
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise TextError(f"value {raw!r} is not a number", field)
        text = _nfkc(str(raw)).strip()
        m = first_number(text)
        if m is None or text[: m.start()].strip(" :="):
            raise TextError(f"value '{raw}' is not a number", field)
        try:
            x = parse_number(m.group())
        except ValueError:  # 1e400: not a finite number
            raise TextError(f"value {short(raw)} is not a finite number", field) from None
        unit = V.norm_unit(text[m.end() :])
        if not unit:
            base, factor = _DEFAULT_UNIT[dim]
            return x, default if default is not None else base, factor
        spec = V.UNITS.get(unit)
        if spec is None:
            raise TextError(f"unknown unit '{text[m.end():].strip()}' in '{raw}'", field)
        if spec[0] != dim:
            raise TextError(f"unit '{text[m.end():].strip()}' is not {_DIM_WORDS[dim]}", field)
        return x, spec[1], spec[2]

    @staticmethod
    def _exact(x: float, factor: float) -> float:
        # a converted value is rounded so that e.g. 4193.4 kbit reads back as 4.1934 Mbit exactly
        return x if factor == 1.0 else round(x * factor, 10)

    def data(self, raw: Any, field: str) -> float:
        x, _, f = self.quantity(raw, "data", field)
        return self._exact(x, f)

    def time_slots(self, raw: Any, field: str) -> float:
        x, base, f = self.quantity(raw, "time", field)
        if base == "slot":
            return self._exact(x, f)
        return round(x * f / self.slot_s, 10)

    def seconds(self, raw: Any, field: str) -> float:
        x, base, f = self.quantity(raw, "time", field, default="s")
        if base == "slot":
            raise TextError(f"value '{raw}' must be a duration in seconds, not in slots", field)
        return self._exact(x, f)

    def rate_per_slot(self, raw: Any, field: str) -> float:
        x, base, f = self.quantity(raw, "rate", field)
        return self._exact(x, f) if base == "slot" else round(x * f * self.slot_s, 10)

    def rate_per_second(self, raw: Any, field: str) -> float:
        x, base, f = self.quantity(raw, "rate", field, default="s")
        if base == "s":
            return self._exact(x, f)
        return round(x * f / self.slot_s, 10)

    def plain(self, raw: Any, field: str) -> float:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise TextError(f"value {raw!r} is not a number", field)
        try:
            return parse_number(_nfkc(str(raw)))
        except ValueError:
            raise TextError(f"value '{raw}' is not a number", field) from None

    def count(self, raw: Any, field: str) -> int:
        """A whole count, optionally followed by a count unit (``4``, ``4 tasks``, ``4 个任务``)."""
        text = _nfkc(str(raw)).strip() if isinstance(raw, str) else raw
        if isinstance(text, str):
            m = first_number(text)
            if m is not None and not text[: m.start()].strip() and V.norm_unit(text[m.end() :]) in V.COUNT_UNITS:
                text = m.group()
        x = self.plain(text, field)
        if x < 0:
            raise TextError(f"value '{raw}' must not be negative", field)
        return self.integer(x, raw, field)

    @staticmethod
    def integer(x: float, raw: Any, field: str) -> int:
        r = round(x)
        if abs(x - r) > 1e-6:
            raise TextError(f"value '{raw}' is not a whole number", field)
        return int(r)

    # ----------------------------------------------------------- attributes
    def attributes(
        self, raw: Any, field: str, allowed: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Attributes of a device or server value: key -> parsed value (floats in canonical units).

        Every key of ``allowed`` must be there; those of ``optional`` may be.
        """
        if not isinstance(raw, str):
            raise TextError(f"value {raw!r} is not a list of attributes", field)
        text = _nfkc(raw)
        parts, depth, cur = [], 0, []
        for ch in text:  # split on , and ; outside brackets
            depth += (ch == "[") - (ch == "]")
            if depth == 0 and _SPLIT_ATTRS.match(ch):
                parts.append("".join(cur))
                cur = []
            else:
                cur.append(ch)
        parts.append("".join(cur))
        out: dict[str, Any] = {}
        for part in (p.strip() for p in parts):
            if not part:
                continue
            key, value = self.attribute(part, field)
            if key is None:  # the device's own type: carries nothing
                continue
            if key not in allowed and key not in optional:
                raise TextError(f"attribute '{part}' does not belong here", field)
            if key in out:
                raise TextError(f"attribute '{self.attr_name(key)}' appears twice", field)
            out[key] = value
        missing = [self.attr_name(k) for k in allowed if k not in out]
        if missing:
            raise TextError(f"missing attribute '{missing[0]}' in '{raw}'", field)
        return out

    def attribute(self, part: str, field: str) -> tuple[str | None, Any]:
        if "[" in part:  # a bracketed list: the load history
            label, _, rest = part.partition("[")
            key = V.ATTR_INDEX.get(re.sub(r"\d+", "", V.norm_label(label)))
            if key != "history":
                raise TextError(f"unknown attribute '{part}'", field)
            if "]" not in rest:
                raise TextError(f"unclosed list in '{part}'", field)
            body = rest[: rest.index("]")]
            items = [t.strip() for t in re.split(r"[,\s]+", body) if t.strip()]
            try:
                return key, tuple(round(parse_number(t), 10) for t in items)
            except ValueError:
                raise TextError(f"load history '{part}' holds a value that is not a number", field) from None
        m = first_number(part)
        if m is None or self._is_type_part(part):
            return self.type_attribute(part, field)
        label = V.norm_label(part[: m.start()])
        key = V.ATTR_INDEX.get(re.sub(r"\d+", "", label))
        unit = part[m.end() :]
        if key is None and not label:  # "297 cycles/bit": the unit says what it is
            spec = V.UNITS.get(V.norm_unit(unit))
            key = _ATTR_BY_DIM.get(spec[0]) if spec else None
        if key is None:
            raise TextError(f"unknown attribute '{part}'", field)
        sub = f"{field}.{self.attr_name(key)}"
        value = part[m.start() :]
        if key == "history":
            nums = find_numbers(value)
            if _NUMS_AND_SPACE.sub("", value):
                raise TextError(f"load history '{part}' holds a value that is not a number", sub)
            try:
                return key, tuple(round(parse_number(t), 10) for t in nums)
            except ValueError:
                raise TextError(f"load history {short(part)} holds a value that is not a finite number", sub) from None
        if key == "cpu_ghz":
            x, _, f = self.quantity(value, "freq", sub)
            return key, self._exact(x, f)
        if key == "cycles_per_bit":
            x, _, f = self.quantity(value, "density", sub)
            return key, self._exact(x, f)
        if key == "uplink_mbps":
            return key, self.rate_per_second(value, sub)
        if key in ("queued_mbit", "incoming_mbit"):
            return key, self.data(value, sub)
        if key == "incoming_tasks":
            return key, self.count(value, sub)
        if key == "active":
            return key, self.integer(self.plain(value, sub), value, sub)
        raise TextError(f"unknown attribute '{part}'", field)  # pragma: no cover

    @staticmethod
    def _is_type_part(part: str) -> bool:
        n = V.norm_label(part)
        for lbl in V.ATTRS["type"][0] + (V.ATTRS["type"][1],):
            n = re.sub(rf"^{re.escape(V.norm_label(lbl))}\s*:?\s*", "", n)
        return n in V.TYPE_INDEX

    def type_attribute(self, part: str, field: str) -> tuple[str | None, Any]:
        n = V.norm_label(part)
        for lbl in V.ATTRS["type"][0] + (V.ATTRS["type"][1],):
            n = re.sub(rf"^{re.escape(V.norm_label(lbl))}\s*:?\s*", "", n)
        if n in V.TYPE_INDEX:
            return "type", V.TYPE_INDEX[n]
        if n in (V.DEVICE_TYPE_ZH, V.DEVICE_TYPE_EN, "device", "mobile"):
            return None, None
        raise TextError(f"unknown attribute or server type '{part}'", field)

    # ---------------------------------------------------------------- state
    def state(self, items: list[tuple[str, Any]], strict: bool) -> TaskState:
        fields: dict[str, tuple[str, Any]] = {}
        servers: dict[int, tuple[str, Any]] = {}
        for label, value in items:
            n = V.norm_label(str(label))
            m = _SERVER_KEY.match(n)
            if m:
                k = int(m.group(1) or m.group(2))
                if k in servers:
                    raise TextError("server appears twice", str(label))
                servers[k] = (str(label), value)
            elif n in V.FIELD_INDEX:
                key = V.FIELD_INDEX[n]
                if key in fields:
                    raise TextError(f"field appears twice (also as '{fields[key][0]}')", str(label))
                fields[key] = (str(label), value)
            elif strict:
                if _LOOKS_LIKE_SERVER.search(n):
                    raise TextError("unknown server key (expected server K / 边缘服务器K, K = 1..N)", str(label))
                raise TextError("unknown key", str(label))
        for key in V.FIELDS:
            if key not in fields:
                raise TextError("missing field", self.name(key))
        if not servers:
            raise TextError("no server in the prompt", "server 1" if not self.zh else "边缘服务器1")
        ids = sorted(servers)
        if ids != list(range(1, len(ids) + 1)):
            raise TextError(f"servers must be numbered 1..N without gaps (found {ids})", servers[ids[-1]][0])

        lbl = {k: v[0] for k, v in fields.items()}
        val = {k: v[1] for k, v in fields.items()}
        self.slot_s = self.seconds(val["slot_s"], lbl["slot_s"])
        if self.slot_s <= 0:
            raise TextError(f"value '{val['slot_s']}' must be positive", lbl["slot_s"])
        max_delay_raw = self.time_slots(val["max_delay"], lbl["max_delay"])
        device = self.attributes(val["device"], lbl["device"], _DEVICE_ATTRS)
        views = []
        for k in ids:
            label, raw = servers[k]
            a = self.attributes(raw, label, _SERVER_ATTRS, _FRESH_SERVER_ATTRS)
            views.append(
                ServerView(
                    type=a["type"],
                    cpu_ghz=a["cpu_ghz"],
                    cycles_per_bit=a["cycles_per_bit"],
                    active=a["active"],
                    queued_mbit=a["queued_mbit"],
                    history=a["history"],
                    incoming_mbit=a.get("incoming_mbit", 0.0),
                    incoming_tasks=a.get("incoming_tasks", 0),
                )
            )
        # the fresh view's counts: a prompt without them (the templates of before, the official format) reads 0
        fresh = {k: self.count(val[k], lbl[k]) for k in V.FRESH_FIELDS if k in fields}
        return TaskState(
            task_size=self.data(val["task_size"], lbl["task_size"]),
            max_delay=self.integer(max_delay_raw, val["max_delay"], lbl["max_delay"]),
            local_wait=self.time_slots(val["local_wait"], lbl["local_wait"]),
            tx_wait=self.time_slots(val["tx_wait"], lbl["tx_wait"]),
            upload_rate=self.rate_per_slot(val["upload_rate"], lbl["upload_rate"]),
            slot_s=self.slot_s,
            drop_penalty=self.plain(val["drop_penalty"], lbl["drop_penalty"]),
            device_ghz=device["cpu_ghz"],
            device_cycles_per_bit=device["cycles_per_bit"],
            device_mbps=device["uplink_mbps"],
            servers=tuple(views),
            **fresh,
        )


def _is_zh(items: list[tuple[str, Any]]) -> bool:
    return any(_CJK.search(str(label)) for label, _ in items)


def parse_field_items(items: list[tuple[str, Any]], strict: bool = True) -> TaskState:
    """A state from ``(label, value)`` pairs of either language (see the module docstring)."""
    return _Reader(_is_zh(items)).state(items, strict)


def split_prompt(text: str) -> list[tuple[str, str]]:
    """The ``label: value`` lines of a prompt (also ``"label": "value",`` JSON-style lines)."""
    items = []
    for line in _nfkc(text).splitlines():
        line = line.strip().rstrip(",").strip()
        if ":" not in line:
            continue
        label, _, value = line.partition(":")
        items.append((label.strip().strip('"').strip(), value.strip().strip('"').strip()))
    return items


def parse_prompt_text(text: str) -> TaskState:
    """A state from a prompt of any state-carrying template; lines with unknown labels are ignored."""
    if not isinstance(text, str):
        raise TextError(f"a prompt must be a string, not {type(text).__name__}")
    items = split_prompt(text)
    return _Reader(_is_zh(items)).state(items, strict=False)
