"""An installed copy carries what the jobs read: the SQL files and the published schemas (and
the sample generator its vocabulary), and not the benchmark.

A Spark driver or worker may run an installed wheel with no repository beside it; the offline
benchmark (`bench/` at the repository root) never runs there, so the wheel leaves it out.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from longtail import sqlfiles

REPO = Path(__file__).resolve().parents[2]


def test_every_python_package_is_declared() -> None:
    declared = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    src = REPO / "src"
    found = {
        ".".join(p.parent.relative_to(src).parts) for p in (src / "longtail").rglob("__init__.py")
    }
    found.add("longtail.sql")
    assert found <= declared, sorted(found - declared)
    assert not any("bench" in name.split(".") for name in declared), "the benchmark is not shipped"


def test_sql_is_read_from_the_package_not_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LONGTAIL_SQL_DIR", raising=False)
    shipped = sorted(p.name for p in sqlfiles.sql_dir().iterdir() if p.name.endswith(".sql"))
    assert shipped == sorted(p.name for p in (REPO / "sql").glob("*.sql"))
    text = (REPO / "sql" / "interactions.sql").read_text(encoding="utf-8")
    assert (sqlfiles.sql_dir() / "interactions.sql").read_text(encoding="utf-8") == text


def _sources(out: Path) -> Path:
    """What the wheel is built from, copied: a checkout's `build/` (setuptools' in-tree build
    folder) would add whatever an earlier build left there, and stays untouched."""
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    out.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, out / name)
    for name in ("src", "sql"):
        shutil.copytree(REPO / name, out / name, ignore=skip)
    return out


def test_the_wheel_ships_sql_and_schemas_not_the_benchmark(tmp_path: Path) -> None:
    sources = _sources(tmp_path / "sources")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(sources),
            "-w",
            str(tmp_path),
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("longtail-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (REPO / "sql").glob("*.sql"):
        assert f"longtail/sql/{path.name}" in names
    for path in (REPO / "src" / "longtail" / "schemas").glob("*.json"):
        assert f"longtail/schemas/{path.name}" in names
    assert "longtail/sample_vocabulary.json" in names  # the sample generator's word lists
    shipped = {n.split("/")[0] for n in names if n.endswith(".py")}
    assert shipped == {"longtail"}, shipped  # no top-level bench/ (nor jobs/, dags/, tests/)
    assert not any(n.startswith("longtail/bench/") for n in names)
