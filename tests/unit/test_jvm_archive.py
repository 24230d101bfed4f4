"""The driver JVM's class archive: named to every driver when built, never required."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from longtail import jvm_archive
from longtail.spark_launch import submit_settings


def test_options_name_an_existing_archive_only(tmp_path: Path) -> None:
    archive = tmp_path / "a.jsa"
    assert jvm_archive.java_options({jvm_archive.ENV: str(archive)}) is None  # not built
    archive.write_bytes(b"x")
    options = jvm_archive.java_options({jvm_archive.ENV: str(archive)})
    assert options == f"-XX:SharedArchiveFile={archive} -Xshare:auto"
    assert jvm_archive.java_options({jvm_archive.ENV: "off"}) is None


def test_every_submitted_driver_gets_it_unless_the_deployment_sets_its_own(tmp_path: Path) -> None:
    archive = tmp_path / "a.jsa"
    archive.write_bytes(b"x")
    environ = {jvm_archive.ENV: str(archive)}
    _, conf, _ = submit_settings("local[2]", {}, environ)
    assert conf[jvm_archive.JAVA_OPTIONS] == f"-XX:SharedArchiveFile={archive} -Xshare:auto"
    own = '{"spark.driver.extraJavaOptions": "-Xss4m"}'
    _, conf, _ = submit_settings("local[2]", {}, {**environ, "LONGTAIL_SPARK_CONF": own})
    assert conf[jvm_archive.JAVA_OPTIONS] == "-Xss4m"
    _, conf, _ = submit_settings("local[2]", {}, {jvm_archive.ENV: "off"})
    assert jvm_archive.JAVA_OPTIONS not in conf


def test_the_archive_is_named_after_spark_java_and_jars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = jvm_archive.archive_path("/some/venv")
    assert path is not None and path.parent == Path("/some/venv/share/longtail")
    assert path.name.startswith("spark-driver-") and path.suffix == ".jsa"
    assert jvm_archive.archive_path(sys.prefix) == jvm_archive.archive_path()
    # another java binary (JAVA_HOME) gets another archive: one built by a different JVM is
    # never named to this one
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "java").write_text("")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    other = jvm_archive.archive_path("/some/venv")
    assert other is not None and other.parent == path.parent and other.name != path.name
    monkeypatch.delenv("JAVA_HOME")
    (tmp_path / "bin" / "java").unlink()
    monkeypatch.setenv("PATH", "")
    assert jvm_archive.archive_path("/some/venv") is None  # no java at all: no archive


def test_the_test_sessions_driver_maps_the_installed_archive(spark: Any) -> None:
    """`make venv` built it: the driver of this test session loaded its classes from it."""
    path = jvm_archive.archive_path()
    if path is None or not path.is_file():
        pytest.skip("no class archive in this install (`python -m longtail.jvm_archive`)")
    jvm = spark.sparkContext._jvm
    bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    )
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert f"-XX:SharedArchiveFile={path}" in args
    assert bean.getVMOption("UseSharedSpaces").getValue() == "true"
