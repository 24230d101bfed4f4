"""The registry states each stage's gates once (`Stage.gates`): every one is a function of
`longtail.gates`, and it is exactly what the stage's module calls."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from longtail import gates, registry

SRC = Path(__file__).resolve().parents[2] / "src" / "longtail"


def _gates_called(stage: str) -> set[str]:
    """The `gates.gate_*` names the stage's module uses (calls, or hands to write-audit-publish)."""
    tree = ast.parse((SRC / "stages" / f"{stage}.py").read_text(encoding="utf-8"))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "gates"
        and node.attr.startswith("gate_")
    }


@pytest.mark.parametrize("stage", registry.STAGES, ids=lambda s: s.name)
def test_each_stage_runs_the_gates_the_registry_names(stage: registry.Stage) -> None:
    for name in stage.gates:
        assert inspect.isfunction(getattr(gates, name, None)), f"no longtail.gates.{name}"
    assert _gates_called(stage.name) == set(stage.gates)


def test_every_gate_belongs_to_a_stage() -> None:
    defined = {
        name
        for name, fn in inspect.getmembers(gates, inspect.isfunction)
        if name.startswith("gate_") and fn.__module__ == gates.__name__
    }
    assert defined == {g for s in registry.STAGES for g in s.gates}
