"""``paper-zh``: the official COMLLM Chinese template, field for field.

An official record is ``{"instruction": ..., "input": {...}, "output": {"action_name": ...}}``;
``input`` holds one string per field and one per server (``边缘服务器K``), e.g.
``"任务大小": "4.1934 Mbits"``, ``"丢弃惩罚": 100`` (a number), and
``"边缘服务器1": "类型 高性能型, CPU频率 41.8 GHz, 每比特周期数 297.0, 活跃任务数0，服务器总队列长度0.0000 Mbits, 过去10个时间槽负载: [2.0, 0.0, ...]"``.
Quantities have 4 decimals; constants are written as Python writes a float
(``297.0``). The text prompt is the instruction, a blank line, then one
``key: value`` line per input entry.

``paper-zh-v2`` is the same format plus the fresh view (README, "Text and data"), in
Chinese-labelled fields the official format does not have: ``"本时间槽到达任务数": 4``
and ``"本时间槽未决任务数": 3`` (JSON numbers, after ``本地设备``), and in each
``边缘服务器K`` line, after the queue length, ``在途任务量3.2000 Mbits, 在途任务数2``
(the Mbit still to send by the tasks bound for it in devices' uplinks, and their count).
The prompt after the instruction::

    任务大小: 4.1934 Mbits
    最大延迟: 10 时间槽
    本地CPU队列等待时间: 3.0000 时间槽
    网络队列等待时间: 0.0000 时间槽
    网络上传速率: 1.4000 Mbits/时间槽
    时间槽时长: 0.1秒
    丢弃惩罚: 100
    本地设备: 类型 移动设备, CPU频率 2.5 GHz, 每比特周期数 297.0, 传输速率 14.0 Mbps
    本时间槽到达任务数: 4
    本时间槽未决任务数: 3
    边缘服务器1: 类型 高性能型, CPU频率 41.8 GHz, 每比特周期数 297.0, 活跃任务数0，服务器总队列长度0.0000 Mbits, 在途任务量3.2000 Mbits, 在途任务数2, 过去5个时间槽负载: [2.0, 0.0, 1.0, 1.0, 0.0]
    边缘服务器2: 类型 标准型, CPU频率 30.0 GHz, 每比特周期数 297.0, 活跃任务数2，服务器总队列长度7.2731 Mbits, 在途任务量0.0000 Mbits, 在途任务数0, 过去5个时间槽负载: [3.0, 3.0, 0.0, 3.0, 4.0]
    边缘服务器3: 类型 节能型, CPU频率 22.0 GHz, 每比特周期数 1200.5, 活跃任务数5，服务器总队列长度31.5000 Mbits, 在途任务量12.5000 Mbits, 在途任务数3, 过去5个时间槽负载: [5.0, 6.0, 4.5, 5.0, 7.0]

An official record without these fields reads them as 0 (the schema's defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from comllm.state import TaskState
from comllm.text import vocab as V
from comllm.text.answers import action_name
from comllm.text.template import Template
from comllm.text.units import CONSTANT_DECIMALS, fixed, python_float

INSTRUCTION_ZH = (
    "你是一个MEC任务卸载决策智能体。你的目标是为新到达的任务制定最优卸载策略，以最小化任务的总处理延迟，"
    "同时避免任务丢弃（即总延迟不超过最大容忍延迟）。若延迟超过最大容忍延迟，任务被丢弃，成本为常数惩罚。\n\n"
    "决策分析方法：\n"
    "对每个动作（本地执行；卸载到各边缘服务器）预估总延迟，选择延迟最低且不超过最大容忍延迟的动作。\n"
    "1. 本地执行延迟 = 本地CPU队列等待时间 + 本地计算时间。\n"
    "    - 本地计算时间取决于任务大小、任务的计算密度（每比特周期数）和本地CPU的处理能力（频率）。\n"
    "    - 本地CPU队列等待时间取决于本地队列中已有任务的完成时间。\n"
    "2. 边缘卸载延迟 = 传输队列等待时间 + 传输时间 + 边缘服务器队列等待时间 + 边缘服务器执行时间。\n"
    "    - 传输时间取决于任务大小和网络上传速率。\n"
    "    - 边缘服务器队列等待时间取决于服务器上所有任务的总队列长度、任务的计算密度和服务器被所有活跃任务共享后的处理能力。\n"
    "    - 边缘服务器执行时间取决于任务大小、任务的计算密度和服务器被所有活跃任务共享后的处理能力。\n"
    "    - 活跃任务数表示边缘服务器当前处理的并发任务数。在预估延迟时，我们假设新任务加入后，活跃任务数会加1。\n"
    "3. 负载历史：利用过去10个时间槽的活跃任务数来理解服务器负载的动态趋势。\n"
    "请基于以下输入数据，执行分析，选择总延迟最低且不超过最大容忍延迟的决策，并只输出决策名称。"
)


@dataclass(frozen=True)
class ChineseStyle:
    """What of the official format may change (a :class:`~comllm.text.template.TemplateStyle`): orders only.

    ``field_order``: the fields in the order written (``paper-zh-v2``:
    :data:`vocab.FIELD_ORDER_V2`); ``server_order``: a permutation of server indices (ids
    kept) or ``None`` for 1..N. The wording, units and numbers are the official format's.
    """

    FAMILY: ClassVar[str] = "Chinese"
    PERTURBABLE: ClassVar[frozenset[str]] = frozenset({"orders", "servers"})
    ORDERS: ClassVar[tuple[str, ...]] = ("field_order",)
    NUMBER_FORMATS: ClassVar[tuple[str, ...]] = ()

    field_order: tuple[str, ...] = V.FIELD_ORDER
    server_order: tuple[int, ...] | None = None

    def word_tables(self) -> list[dict[str, tuple[str, ...]]]:
        return []


def _penalty(x: float) -> int | float:
    """The drop penalty is a JSON number in the official format (``100``)."""
    r = round(x, 4)
    return int(r) if float(r).is_integer() else float(r)


@dataclass(frozen=True, repr=False)
class ChineseTemplate(Template):
    """The official Chinese prompt (instruction + one ``key: value`` line per input entry)."""

    name: str = "paper-zh"
    lang: str = "zh"
    decimals: int = 4
    description: str = "Chinese, the official COMLLM format field for field"
    style: ChineseStyle = ChineseStyle()
    fresh_view: bool = False  # paper-zh-v2: the fresh view too (with ChineseStyle(FIELD_ORDER_V2))

    @property
    def instruction(self) -> str:
        return INSTRUCTION_ZH

    def render_fields(self, state: TaskState) -> dict[str, Any]:
        d = self.decimals
        pf = lambda x: python_float(x, max(d, CONSTANT_DECIMALS))  # noqa: E731
        values: dict[str, Any] = {
            "task_size": f"{fixed(state.task_size, d)} Mbits",
            "max_delay": f"{int(state.max_delay)} 时间槽",
            "local_wait": f"{fixed(state.local_wait, d)} 时间槽",
            "tx_wait": f"{fixed(state.tx_wait, d)} 时间槽",
            "upload_rate": f"{fixed(state.upload_rate, d)} Mbits/时间槽",
            "slot_s": f"{pf(state.slot_s)}秒",
            "drop_penalty": _penalty(state.drop_penalty),
            "slot_arrivals": int(state.slot_arrivals),  # written by paper-zh-v2 only (JSON numbers)
            "slot_pending": int(state.slot_pending),
            "device": (
                f"类型 {V.DEVICE_TYPE_ZH}, CPU频率 {pf(state.device_ghz)} GHz, "
                f"每比特周期数 {pf(state.device_cycles_per_bit)}, 传输速率 {pf(state.device_mbps)} Mbps"
            ),
        }
        out = {V.ALL_FIELDS[k][1]: values[k] for k in self.style.field_order}
        order = self.style.server_order if self.style.server_order is not None else range(state.n_servers)
        for j in order:
            s = state.servers[j]
            hist = ", ".join(pf(h) for h in s.history)
            fresh = ""
            if self.fresh_view:
                inc_mbit, inc_n = V.FRESH_ATTRS["incoming_mbit"][1], V.FRESH_ATTRS["incoming_tasks"][1]
                fresh = f"{inc_mbit}{fixed(s.incoming_mbit, d)} Mbits, {inc_n}{int(s.incoming_tasks)}, "
            out[action_name(j + 1, "zh")] = (
                f"类型 {V.TYPES[s.type][1]}, CPU频率 {pf(s.cpu_ghz)} GHz, 每比特周期数 {pf(s.cycles_per_bit)}, "
                f"活跃任务数{int(s.active)}，服务器总队列长度{fixed(s.queued_mbit, d)} Mbits, {fresh}"
                f"过去{len(s.history)}个时间槽负载: [{hist}]"
            )
        return out

    def render_prompt(self, state: TaskState) -> str:
        lines = [f"{k}: {v}" for k, v in self.render_fields(state).items()]
        return self.instruction + "\n\n" + "\n".join(lines)
