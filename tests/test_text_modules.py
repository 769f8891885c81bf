"""comllm.text's structure: no import cycle, every fact once, one style protocol, one ``with_style``."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from comllm.text import TEMPLATES, TextError, get_template
from comllm.text.perturb import PERTURBATIONS, perturbed_template
from tests.test_text_perturb import _example_state

TEXT = Path(__file__).resolve().parents[1] / "comllm" / "text"


def _imports() -> dict[str, tuple[set[str], list[str]]]:
    """module -> (the comllm.text modules it imports, the imports not at module level)."""
    out = {}
    for p in TEXT.glob("*.py"):
        tree = ast.parse(p.read_text())
        top = {id(n) for n in tree.body}
        deps, nested = set(), []
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("comllm.text"):
                if node.module == "comllm.text":
                    names = [f"comllm.text.{a.name}" for a in node.names if (TEXT / f"{a.name}.py").exists()]
                    names = names or ["comllm.text"]
                else:
                    names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("comllm.text")]
            deps |= set(names)
            if names and id(node) not in top:
                nested.append(f"line {node.lineno}: {', '.join(names)}")
        out["comllm.text" if p.stem == "__init__" else f"comllm.text.{p.stem}"] = (deps, nested)
    return out


def test_no_import_cycle_and_no_lazy_import_inside_comllm_text() -> None:
    graph = {m: {d for d in deps if d != m} for m, (deps, _) in _imports().items()}
    done: set[str] = set()

    def visit(m: str, path: tuple[str, ...]) -> None:
        assert m not in path, f"import cycle: {' -> '.join(path[path.index(m):] + (m,))}"
        if m in done:
            return
        for d in graph.get(m, ()):
            visit(d, path + (m,))
        done.add(m)

    for m in graph:
        visit(m, ())
    lazy = {m: nested for m, (_, nested) in _imports().items() if nested}
    assert not lazy, f"imports inside functions (no cycle needs them): {lazy}"
    assert "comllm.text" not in set().union(*(d for m, d in graph.items() if m != "comllm.text"))


def test_text_error_is_one_class_everywhere() -> None:
    import comllm.text
    from comllm.text import errors, template

    assert comllm.text.TextError is errors.TextError is template.TextError


def test_every_template_is_registered_without_a_plugin_loop() -> None:
    import comllm.text.compact as compact

    source = (TEXT / "__init__.py").read_text() + (TEXT / "registry.py").read_text()
    assert "importlib" not in source and "except" not in (TEXT / "registry.py").read_text()
    assert not hasattr(compact, "_register")
    for t in (*compact.COMPACT_TEMPLATES, *compact.COMPACT_TEMPLATES_V2):
        assert TEMPLATES[t.name] is t


def test_unit_tables_live_in_units_only() -> None:
    """One table of units (comllm.text.units.UNITS): no renderer keeps factors of its own."""
    for name in ("english", "compact", "chinese", "vocab", "parse", "perturb"):
        source = (TEXT / f"{name}.py").read_text()
        for old in ("_DATA =", "_RATE =", "_FREQ =", "DATA_UNITS", "RATE_UNITS", "TIME_UNITS", "CANONICAL_UNIT",
                    "_DEFAULT_UNIT", "class _Numbers", "def replace_template"):  # fmt: skip
            assert old not in source, (name, old)
    assert not (TEXT / "numbers.py").exists()


STYLED = [n for n, t in TEMPLATES.items() if t.style is not None]


def test_which_templates_have_a_style() -> None:
    assert sorted(n for n in TEMPLATES if n not in STYLED) == ["estimates", "estimates-v2"]


@pytest.mark.parametrize("name", STYLED)
def test_one_with_style_for_every_family(name: str) -> None:
    t = get_template(name)
    s = _example_state()
    st = t.style
    for attr in ("FAMILY", "PERTURBABLE", "ORDERS", "NUMBER_FORMATS", "server_order"):
        assert hasattr(st, attr), attr
    fields = {f.name for f in dataclasses.fields(st)}
    assert set(st.ORDERS) <= fields and "server_order" in fields
    assert isinstance(st.word_tables(), list)
    assert t.with_style().render_prompt(s) == t.render_prompt(s)
    assert t.with_style(st).render_prompt(s) == t.render_prompt(s)
    moved = t.with_style(server_order=tuple(reversed(range(s.n_servers))))
    assert moved.style.server_order == (2, 1, 0) and t.style.server_order is None  # the original is unchanged
    assert moved.render_prompt(s) != t.render_prompt(s)
    assert sorted(moved.render_prompt(s).splitlines()) == sorted(t.render_prompt(s).splitlines())


def test_a_template_without_a_style_says_so() -> None:
    with pytest.raises(TextError, match="template 'estimates' has no style"):
        get_template("estimates").with_style(numbers="sci")
    with pytest.raises(TextError, match="not 'estimates-v2'"):
        perturbed_template("units", 0, base="estimates-v2")
    with pytest.raises(TextError, match="not 'paper\\+numbers'"):  # a perturbed template is not perturbed again
        perturbed_template("units", 0, base=perturbed_template("numbers", 0))


@pytest.mark.parametrize("name", STYLED)
def test_a_perturbation_applies_where_the_style_has_what_it_changes(name: str) -> None:
    t = get_template(name)
    for p in PERTURBATIONS.values():
        if p.changes <= t.style.PERTURBABLE:
            perturbed_template(p.name, 0, base=name).render_prompt(_example_state())
        else:
            with pytest.raises(TextError, match=f"not defined for the {t.style.FAMILY} template '{name}'"):
                perturbed_template(p.name, 0, base=name)


def test_answers_and_prompts_name_the_actions_alike() -> None:
    from comllm.text.answers import action_name, render_answer

    for a in range(4):
        assert action_name(a) == render_answer(a, "en")
        assert render_answer(a, "zh") in (action_name(a, "zh"), "卸载到" + action_name(a, "zh"))
    s = _example_state()
    for name in ("paper", "annotated-compact", "estimates"):
        heads = [line.split(":")[0] for line in get_template(name).render_prompt(s).splitlines()]
        assert {action_name(a) for a in range(1, 4)} <= set(heads)
    assert set(get_template("paper-zh").render_fields(s)) >= {action_name(a, "zh") for a in range(1, 4)}
