"""Answer parsing: messy model output in both languages; it never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comllm.text import answer_strings, get_template, parse_answer, render_answer

MESSY = [
    # (text, n_servers, expected action)
    ("local", 3, 0),
    ("LOCAL", 3, 0),
    ("  Local.  ", 3, 0),
    ("I would run it locally.", 3, 0),
    ("server 2", 3, 2),
    ("Server2", 3, 2),
    ("SERVER #3!", 3, 3),
    ("server_1", 3, 1),
    ("server-10", 12, 10),
    ("server 10", 9, None),  # not an action of a 9-server state
    ("server 1", 12, 1),  # "server 1" is a prefix of "server 10": the number is read whole
    ("Offload to edge server 4.", 6, 4),
    ("edge server two", 3, 2),
    ("The best choice is server 3 because its queue is empty", 5, 3),
    ("answer: server 5", 5, 5),
    ("Answer : local", 5, 0),
    ("local is slow, server 2 is fast.\nanswer: server 2", 3, 2),
    ("server 1 is busy; local", 3, 0),  # no marker: the last action named
    ("Final answer: SERVER 1", 2, 1),
    ("action 0", 2, 0),
    ("action: 2", 2, 2),
    ("2", 3, 2),
    ("0", 3, 0),
    ("  3. ", 3, 3),
    ("server 0", 3, None),
    ("server", 3, None),
    ("", 3, None),
    ("I don't know", 3, None),
    ("42", 3, None),
    ("answer:", 3, None),
    # Chinese
    ("本地执行", 3, 0),
    ("本地", 3, 0),
    ("卸载到边缘服务器1", 3, 1),
    ("卸载到边缘服务器 2。", 3, 2),
    ("卸载到边缘服务器１２", 12, 12),  # full-width digits
    ("边缘服务器三", 3, 3),
    ("服务器十一", 11, 11),
    ("服务器十二", 11, None),
    ("决策：卸载到边缘服务器2", 3, 2),
    ("分析：本地执行太慢。\n决策： 本地执行", 3, 0),
    ("答案：服务器3", 3, 3),
    ("卸载到边缘服务器9", 3, None),
]


@pytest.mark.parametrize("text,n,expected", MESSY)
def test_messy_answers(text: str, n: int, expected: int | None) -> None:
    assert parse_answer(text, n) == expected
    for name in ("paper", "paper-zh", "estimates"):
        assert get_template(name).parse_answer(text, n) == expected


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=200), n=st.integers(-3, 40))
def test_parse_answer_never_raises_on_any_text(text: str, n: int) -> None:
    a = parse_answer(text, n)
    assert a is None or 0 <= a <= n


@settings(max_examples=100, deadline=None)
@given(junk=st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.integers())), n=st.integers(0, 5))
def test_parse_answer_never_raises_on_non_text(junk: object, n: int) -> None:
    assert parse_answer(junk, n) is None


_FILLERS = ["", " ", "\n", "I choose ", "My decision is ", "=> ", "**", "OK, ", "选择", "我认为应"]
_ENDS = ["", ".", "!", " ", "\n", "。", "**", " because it is fastest", "，因为延迟最低"]


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 16),
    data=st.data(),
    lang=st.sampled_from(["en", "zh"]),
    pre=st.sampled_from(_FILLERS),
    post=st.sampled_from(_ENDS),
    upper=st.booleans(),
)
def test_canonical_answer_in_noise_is_recovered(n, data, lang, pre, post, upper) -> None:
    a = data.draw(st.integers(0, n))
    ans = render_answer(a, lang)
    text = pre + (ans.upper() if upper else ans) + post
    assert parse_answer(text, n) == a


def test_answer_strings_are_the_canonical_short_answers() -> None:
    assert answer_strings(3) == ["local", "server 1", "server 2", "server 3"]
    assert answer_strings(2, "zh") == ["本地执行", "卸载到边缘服务器1", "卸载到边缘服务器2"]
    assert get_template("paper-zh").answers(1) == ["本地执行", "卸载到边缘服务器1"]


def test_render_answer_rejects_negative_actions() -> None:
    with pytest.raises(ValueError, match="action -1"):
        render_answer(-1)
