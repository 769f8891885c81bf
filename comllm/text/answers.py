"""Answers: an action to a short string and any model output back to an action.

Canonical answers: ``local`` / ``server K`` (English), ``本地执行`` / ``卸载到边缘服务器K``
(Chinese). :func:`parse_answer` reads either language in messy text (case,
spaces, punctuation, full-width characters, surrounding words, Chinese or
English number words): after the last answer marker (``answer:``, ``决策：``...)
if there is one, it takes the last action named; an action outside 0..N, a
number that is not a whole positive count (``server -1``, ``server 3.5``,
``server 1e3``), or no action at all, gives ``None``. It never raises, reads at
most the last :data:`MAX_ANSWER_CHARS` characters, and every pattern runs in
time linear in the text.
"""

from __future__ import annotations

import re
import unicodedata

LOCAL_EN = "local"
LOCAL_ZH = "本地执行"
#: how a Chinese answer names an offload (``卸载到`` + the server's name)
OFFLOAD_ZH = "卸载到"
ANSWER_MARKER = {"en": "answer: ", "zh": "决策："}
#: longest tail of a model output that is read (an answer with its reasoning trace is far shorter)
MAX_ANSWER_CHARS = 20_000

_EN_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_EN_NUM = "|".join(sorted(_EN_WORDS, key=len, reverse=True))
_ZH_NUM = "[零〇一二两三四五六七八九十百]+"

_MARKER = re.compile(r"(?:final answer|answer|decision|决策|答案)\s*+(?:is\s*+|为\s*+|是\s*+)?[:=]", re.I)
# ASCII word edges (not \b): "选择local" must still read "local"
_A, _Z = r"(?<![A-Za-z])", r"(?![A-Za-z])"
# a whole count: no sign before it (checked on the separator), no fraction or exponent after it
_INT = r"\d++(?!\.\d|[eE][-+]?\d)"
# possessive quantifiers (*+, ++): no backtracking into runs of spaces, so the scan stays linear
_ACTION = re.compile(
    rf"(?P<local>{_A}local(?:ly)?{_Z}|本地|{_A}on[- ]device{_Z})"
    rf"|(?:{_A}edge[\s_-]*+)?{_A}server(?P<sep>[\s_#:-]*+)(?:no\.?\s*+)?(?P<num>{_INT}|(?:{_EN_NUM}){_Z})"
    rf"|(?:边缘)?服务器[\s#]*+(?P<zh>{_INT}|{_ZH_NUM})"
    rf"|{_A}action(?P<asep>[\s_#:=-]*+)(?P<act>{_INT})",
    re.I,
)
_BARE = re.compile(r"^[^\w+-]*+(\d++)\W*+$")


def action_name(action: int, lang: str = "en") -> str:
    """How prompts and traces name ``action``: ``local`` / ``server K``; ``本地执行`` / ``边缘服务器K``.

    The English names are the answers; a Chinese answer to offload adds ``卸载到``
    (:func:`render_answer`), and ``边缘服务器K`` is server K's key in the official format.
    """
    if lang == "zh":
        return LOCAL_ZH if action == 0 else f"边缘服务器{action}"
    return LOCAL_EN if action == 0 else f"server {action}"


def answer_strings(n_servers: int, lang: str = "en") -> list[str]:
    """Every valid answer for ``n_servers`` servers, in action order 0..N."""
    return [render_answer(a, lang) for a in range(n_servers + 1)]


def render_answer(action: int, lang: str = "en", reasoning: str | None = None) -> str:
    """The answer of ``action``; with ``reasoning``, the trace then a marked final answer."""
    action = int(action)
    if action < 0:
        raise ValueError(f"action {action} is not an action (0 = local, j = server j)")
    ans = action_name(action, lang)
    if lang == "zh" and action:
        ans = OFFLOAD_ZH + ans
    if reasoning:
        return f"{reasoning.rstrip()}\n{ANSWER_MARKER['zh' if lang == 'zh' else 'en']}{ans}"
    return ans


def _zh_number(s: str) -> int | None:
    if s.isdigit():
        return int(s)
    if "百" in s:
        return None
    if "十" in s:
        tens, _, ones = s.partition("十")
        t = _ZH_DIGITS.get(tens, None) if tens else 1
        o = _ZH_DIGITS.get(ones, None) if ones else 0
        return None if t is None or o is None else 10 * t + o
    if len(s) == 1:
        return _ZH_DIGITS.get(s)
    return None


def _server(k: int | None) -> int | None:
    return None if k is None or k < 1 else k  # servers are numbered from 1


def _signed(sep: str | None) -> bool:
    """A separator ending in a minus sign after a space (``server -1``, ``server #-1``): a negative number.

    ``server-1`` (a hyphen straight after the word) and ``server - 1`` stay server 1.
    """
    return sep is not None and len(sep) > 1 and sep[-1] == "-" and sep[-2] != "-"


def _action_of(m: re.Match[str]) -> int | None:
    if m.group("local"):
        return 0
    if m.group("num"):
        if _signed(m.group("sep")):
            return None
        s = m.group("num").lower()
        return _server(int(s) if s.isdigit() else _EN_WORDS.get(s))
    if m.group("zh"):
        return _server(_zh_number(m.group("zh")))
    if m.group("act"):
        return None if _signed(m.group("asep")) else int(m.group("act"))
    return None  # pragma: no cover


def parse_answer(text: object, n_servers: int) -> int | None:
    """The action named in a model's answer (either language); ``None`` if it names no action of this state."""
    try:
        if not isinstance(text, str):
            return None
        t = unicodedata.normalize("NFKC", text[-MAX_ANSWER_CHARS:])
        markers = list(_MARKER.finditer(t))
        if markers:
            t = t[markers[-1].end() :]
        found = list(_ACTION.finditer(t))
        if found:
            a = _action_of(found[-1])
        else:
            bare = _BARE.match(t)
            a = int(bare.group(1)) if bare else None
        if a is None or not 0 <= a <= int(n_servers):
            return None
        return a
    except Exception:  # a parser of model output must never take the caller down
        return None
