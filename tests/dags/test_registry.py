"""longtail.registry: each stage declared once, consistently, and everything built from it.

Fast: nothing here imports Spark (stage modules are read as source, not imported).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from longtail import registry, tables
from longtail.config import StageConfig
from longtail.errors import PERMANENT_EXIT_CODE

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "longtail"


def test_the_declarations_agree() -> None:
    registry.check()
    assert len(set(registry.NAMES)) == len(registry.STAGES)


def test_every_table_has_one_writer_and_every_published_one_a_publisher() -> None:
    writers = registry.writers()
    for table in (*tables.INTERMEDIATE, *tables.PUBLISHED, tables.EMBEDDING_CACHE):
        assert table in writers, table
    assert sorted(registry.PUBLISHED_BY.values()) == sorted(tables.PUBLISHED)
    for stage, table in registry.PUBLISHED_BY.items():
        assert writers[table] == stage


def test_stages_are_listed_in_an_order_they_can_run_in() -> None:
    seen: set[str] = set()
    for stage in registry.STAGES:
        assert set(registry.needs(stage.name)) <= seen, stage.name
        seen.add(stage.name)


def test_retention_runs_after_every_stage_that_writes_a_table() -> None:
    expired = registry.ancestors("retention")
    assert set(registry.writers().values()) <= expired
    assert registry.leaves() == ("retention",)


@pytest.mark.parametrize("stage", registry.STAGES, ids=lambda s: s.name)
def test_each_stage_has_a_module_with_run_main_and_its_config(stage: registry.Stage) -> None:
    path = SRC / "stages" / f"{stage.name}.py"
    assert stage.module == f"longtail.stages.{stage.name}"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"run", "main"} <= functions, path
    assert issubclass(stage.config_class, StageConfig)
    assert stage.config_class.__name__ in path.read_text(encoding="utf-8")


def test_config_classes_are_not_shared() -> None:
    classes = [s.config for s in registry.STAGES]
    assert len(set(classes)) == len(classes)


def test_lineage_is_what_a_table_needs_in_run_order() -> None:
    assert registry.lineage(registry.writer_of(tables.SILVER_EVENTS)) == ("ingest", "clean")
    assert registry.lineage("publish") == (
        "ingest",
        "clean",
        "content",
        "train_als",
        "item_space",
        "train_ranker",
        "score",
        "publish",
    )


def test_run_params_reach_the_stages_whose_configs_have_them() -> None:
    configs = registry.build_configs("2026-01-31", "/w", landing="/l", top_n=7)
    assert list(configs) == list(registry.NAMES)
    assert configs["ingest"].landing == "/l"  # type: ignore[attr-defined]
    assert configs["score"].top_n == configs["publish"].top_n == 7  # type: ignore[attr-defined]


def test_one_entry_point_for_every_stage() -> None:
    """jobs/ holds the one spark-submit script; it runs any registry stage and refuses others."""
    assert sorted(p.name for p in (REPO / "jobs").glob("*.py")) == ["run_stage.py"]
    assert (REPO / registry.JOB).is_file()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, str(REPO / registry.JOB), "no_such_stage"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == PERMANENT_EXIT_CODE
    assert "ingest" in proc.stderr


def test_the_registry_imports_the_standard_library_only(tmp_path: Path) -> None:
    """The DAG file imports it at parse time."""
    code = (
        "import json, sys; before = set(sys.modules); import longtail.registry; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before} "
        "- set(sys.stdlib_module_names) - {'longtail'})))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def _stage_imports(path: Path) -> set[str]:
    """The registry stages a module imports (`longtail.stages.<stage>` in any import form)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "longtail.stages":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "longtail.stages."
        ):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {
                a.name.split(".")[2] for a in node.names if a.name.startswith("longtail.stages.")
            }
    return found & set(registry.NAMES)


@pytest.mark.parametrize("stage", registry.NAMES)
def test_stages_do_not_import_their_siblings(stage: str) -> None:
    """Shared names live in tables.py and columns.py, shared code in modules of its own."""
    path = SRC / "stages" / f"{stage}.py"
    assert _stage_imports(path) - {stage} == set()


def test_no_table_name_is_a_string_literal_in_a_read() -> None:
    """Every read_table and table_rows names its table with a constant of longtail.tables."""
    literal = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None))
                in ("read_table", "table_rows")
                and any(
                    isinstance(a, ast.Constant) and isinstance(a.value, str)
                    for a in (*node.args, *(k.value for k in node.keywords))
                )
            ):
                literal.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert literal == []
