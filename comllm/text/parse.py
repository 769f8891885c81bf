"""The tolerant reader of prompts: English (any paraphrase of :mod:`vocab`, unit of :mod:`units`, order) and Chinese.

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

from comllm.errors import short
from comllm.state import ServerView, TaskState
from comllm.text import units as U
from comllm.text import vocab as V
from comllm.text.errors import TextError
from comllm.text.units import NUMBER, find_numbers, first_number, parse_number

_SERVER_KEY = re.compile(r"^(?:edge )?server ?#?(\d+)$|^(?:边缘)?服务器 ?(\d+)$")
_LOOKS_LIKE_SERVER = re.compile(r"server|服务器")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_SPLIT_ATTRS = re.compile(r"[,;]")
_NUMS_AND_SPACE = re.compile(rf"{NUMBER}|\s+")

#: attribute inferred from a unit when a value comes without a label ("297 cycles/bit")
_ATTR_BY_DIM = {"freq": "cpu_ghz", "density": "cycles_per_bit", "data": "queued_mbit"}
#: the kind of unit (comllm.text.units.KINDS) of each attribute read as ``number unit``
_ATTR_KIND = {
    "cpu_ghz": "freq",
    "cycles_per_bit": "density",
    "uplink_mbps": "link",
    "queued_mbit": "data",
    "incoming_mbit": "data",
}


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def is_chinese(text: str) -> bool:
    """Whether ``text`` holds a CJK character (a Chinese prompt or label)."""
    return _CJK.search(text) is not None


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
    def value(self, raw: Any, kind: str, field: str) -> float:
        """A ``number unit`` value of ``kind`` (:data:`comllm.text.units.KINDS`) in its canonical unit.

        Without a unit the value is in the canonical unit; time and rate units of the other
        base convert through the slot length read first.
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
        written, unit = text[m.end() :], None
        if U.norm_unit(written):
            unit, dim = U.UNITS.get(U.norm_unit(written)), U.KINDS[kind][0]
            if unit is None:
                raise TextError(f"unknown unit '{written.strip()}' in '{raw}'", field)
            if unit.dim != dim:
                raise TextError(f"unit '{written.strip()}' is not {U.DIMENSION_WORDS[dim]}", field)
        try:
            return U.to_canonical(x, unit, kind, self.slot_s)
        except ValueError:  # the slot length in slots
            raise TextError(f"value '{raw}' must be a duration in seconds, not in slots", field) from None

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
            if m is not None and not text[: m.start()].strip() and U.norm_unit(text[m.end() :]) in U.COUNT_UNITS:
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
            spec = U.UNITS.get(U.norm_unit(unit))
            key = _ATTR_BY_DIM.get(spec.dim) if spec else None
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
        if key in _ATTR_KIND:
            return key, self.value(value, _ATTR_KIND[key], sub)
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
        self.slot_s = self.value(val["slot_s"], "slot", lbl["slot_s"])
        if self.slot_s <= 0:
            raise TextError(f"value '{val['slot_s']}' must be positive", lbl["slot_s"])
        max_delay_raw = self.value(val["max_delay"], "time", lbl["max_delay"])
        device = self.attributes(val["device"], lbl["device"], V.DEVICE_ATTR_ORDER)
        views = []
        for k in ids:
            label, raw = servers[k]
            a = self.attributes(raw, label, V.SERVER_ATTR_ORDER, tuple(V.FRESH_ATTRS))
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
            task_size=self.value(val["task_size"], "data", lbl["task_size"]),
            max_delay=self.integer(max_delay_raw, val["max_delay"], lbl["max_delay"]),
            local_wait=self.value(val["local_wait"], "time", lbl["local_wait"]),
            tx_wait=self.value(val["tx_wait"], "time", lbl["tx_wait"]),
            upload_rate=self.value(val["upload_rate"], "rate", lbl["upload_rate"]),
            slot_s=self.slot_s,
            drop_penalty=self.plain(val["drop_penalty"], lbl["drop_penalty"]),
            device_ghz=device["cpu_ghz"],
            device_cycles_per_bit=device["cycles_per_bit"],
            device_mbps=device["uplink_mbps"],
            servers=tuple(views),
            **fresh,
        )


def _is_zh(items: list[tuple[str, Any]]) -> bool:
    return any(is_chinese(str(label)) for label, _ in items)


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
