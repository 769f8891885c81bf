"""The words of the prompts: field labels (with paraphrases), server types, the orders of fields.

One table per kind of word (the fresh-view fields of the ``-v2`` templates in tables of
their own). Renderers take the first English label of each
entry (the canonical one) or the Chinese one; the paraphrase perturbation picks
among the English ones; the tolerant parser accepts all of them. Labels are
compared after :func:`norm_label` (NFKC, lower case, single spaces). Units and
numbers are in :mod:`comllm.text.units`.
"""

from __future__ import annotations

import re
import unicodedata

from comllm.scenario import SERVER_TYPE_NAMES

#: Top-level fields of a prompt: key -> (English labels, canonical first; Chinese label).
FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "task_size": (("task size", "size of the task", "input data size", "data to process"), "任务大小"),
    "max_delay": (("max delay", "deadline", "maximum tolerable delay", "delay limit"), "最大延迟"),
    "local_wait": (
        ("local CPU queue wait", "local queue waiting time", "wait for the local CPU", "local backlog"),
        "本地CPU队列等待时间",
    ),
    "tx_wait": (
        ("transmission queue wait", "uplink queue waiting time", "wait for the uplink", "network queue wait"),
        "网络队列等待时间",
    ),
    "upload_rate": (("upload rate", "current uplink rate", "transmission rate now", "network upload speed"), "网络上传速率"),
    "slot_s": (("slot duration", "time slot length", "slot length", "length of a slot"), "时间槽时长"),
    "drop_penalty": (("drop penalty", "penalty for a dropped task", "cost of a drop", "drop cost"), "丢弃惩罚"),
    "device": (("local device", "this device", "mobile device", "the device"), "本地设备"),
}

#: Attributes inside the device line and the server lines: key -> (English labels; Chinese label).
ATTRS: dict[str, tuple[tuple[str, ...], str]] = {
    "type": (("type", "kind", "class"), "类型"),
    "cpu_ghz": (("CPU", "CPU frequency", "clock", "processor speed"), "CPU频率"),
    "cycles_per_bit": (("density", "computation density", "workload density", "complexity"), "每比特周期数"),
    "uplink_mbps": (("uplink", "nominal uplink", "nominal rate", "link capacity"), "传输速率"),
    "active": (("active tasks", "active queues", "busy queues", "concurrent tasks"), "活跃任务数"),
    "queued_mbit": (("queued", "queue length", "backlog", "queued data"), "服务器总队列长度"),
    # the Chinese label carries the history length ("过去10个时间槽负载"); digits are dropped before lookup
    "history": (("load history", "recent active counts", "past load", "active history"), "过去个时间槽负载"),
}

#: The fresh view (comllm.state; README, "What a policy sees"), written only by the ``-v2``
#: templates: top-level fields and server attributes a prompt may lack (they then read as 0).
#: Kept apart from FIELDS / ATTRS so that the templates of before, and their perturbations,
#: write exactly what they wrote.
FRESH_FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "slot_arrivals": (
        ("tasks arriving this slot", "arrivals this slot", "tasks arrived in this slot", "slot arrivals"),
        "本时间槽到达任务数",
    ),
    "slot_pending": (
        ("undecided tasks this slot", "pending decisions this slot", "tasks still to be decided", "unseen decisions"),
        "本时间槽未决任务数",
    ),
}
FRESH_ATTRS: dict[str, tuple[tuple[str, ...], str]] = {
    "incoming_mbit": (("incoming", "in flight", "data in transit", "inbound data"), "在途任务量"),
    "incoming_tasks": (("incoming tasks", "tasks in flight", "tasks in transit", "inbound tasks"), "在途任务数"),
}
ALL_FIELDS = {**FIELDS, **FRESH_FIELDS}
ALL_ATTRS = {**ATTRS, **FRESH_ATTRS}

#: The canonical orders (what the renderers write and the parser requires): the fields of a
#: prompt, the attributes of a server line and of the device line; the ``-v2`` ones add the
#: fresh view (the slot's counts after the device line, incoming traffic after the queue).
FIELD_ORDER: tuple[str, ...] = tuple(FIELDS)
SERVER_ATTR_ORDER: tuple[str, ...] = ("type", "cpu_ghz", "cycles_per_bit", "active", "queued_mbit", "history")
DEVICE_ATTR_ORDER: tuple[str, ...] = ("cpu_ghz", "cycles_per_bit", "uplink_mbps")
FIELD_ORDER_V2: tuple[str, ...] = FIELD_ORDER + tuple(FRESH_FIELDS)
SERVER_ATTR_ORDER_V2: tuple[str, ...] = SERVER_ATTR_ORDER[:5] + tuple(FRESH_ATTRS) + SERVER_ATTR_ORDER[5:]

#: Server type names: canonical (scenario) name -> (English spellings; Chinese name).
TYPES: dict[str, tuple[tuple[str, ...], str]] = {
    "high-performance": (("high-performance", "high performance", "high-perf"), "高性能型"),
    "standard": (("standard", "regular"), "标准型"),
    "energy-saving": (("energy-saving", "energy saving", "low-power"), "节能型"),
}
assert tuple(TYPES) == SERVER_TYPE_NAMES
DEVICE_TYPE_ZH = "移动设备"
DEVICE_TYPE_EN = "mobile device"


def norm_label(text: str) -> str:
    """Normalize a label for lookup: NFKC (full-width to ASCII), lower case, single spaces, no edge punctuation."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"\s+", " ", t)
    return t.strip(" \t:=-\"'")


def _index(table: dict[str, tuple[tuple[str, ...], str]], drop_digits: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, (en, zh) in table.items():
        for label in (*en, zh):
            n = norm_label(label)
            if drop_digits:
                n = re.sub(r"\d+", "", n)
            if n in out and out[n] != key:
                raise AssertionError(f"label '{label}' is ambiguous ({out[n]} / {key})")
            out[n] = key
    return out


FIELD_INDEX = _index(ALL_FIELDS)
ATTR_INDEX = _index(ALL_ATTRS, drop_digits=True)
TYPE_INDEX = _index(TYPES)

