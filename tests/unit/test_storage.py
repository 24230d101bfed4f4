"""longtail.warehouse: write-audit-publish via Hadoop's FileSystem, atomic replace, failed audits,
locks, Fs helpers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from longtail.warehouse import publish
from longtail.warehouse.fs import Fs, PublishError
from longtail.warehouse.leases import lock_holder, try_lock
from longtail.warehouse.models import publish_model, read_model
from longtail.warehouse.publish import (
    publish_staged,
    publish_staged_set,
    read_table,
    write_audit_publish,
    write_audit_publish_set,
)
from longtail.warehouse.records import read_record, write_record
from longtail.warehouse.staging import write_staging

DS = date(2024, 5, 1)
OTHER_DS = date(2024, 4, 30)
SCHEMA = "id int, v string"


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below folder (hidden ones included) -> its bytes."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            out[str(path.relative_to(folder))] = path.read_bytes()
    return out


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_publish_then_republish_replaces_the_partition(spark, tmp_path):
    wh = str(tmp_path / "wh")
    first = spark.createDataFrame([(1, "old")], SCHEMA)
    other = spark.createDataFrame([(9, "other day")], SCHEMA)
    assert write_audit_publish(first, wh, "recs", DS) == {}
    write_audit_publish(other, wh, "recs", OTHER_DS)
    target = tmp_path / "wh" / "recs" / "ds=2024-05-01"
    old_files = set(_snapshot(target))
    other_before = _snapshot(tmp_path / "wh" / "recs" / "ds=2024-04-30")
    assertDataFrameEqual(read_table(spark, wh, "recs", DS), [(1, "old")])

    second = spark.createDataFrame([(2, "new"), (3, "newer")], SCHEMA)
    result = write_audit_publish(second, wh, "recs", DS, audit=lambda df: {"rows": df.count()})

    assert result == {"rows": 2}
    assertDataFrameEqual(read_table(spark, wh, "recs", DS), [(2, "new"), (3, "newer")])
    # the old partition's part files are gone, not merged with the new ones
    parquet = {f for f in _snapshot(target) if f.endswith(".parquet")}
    assert parquet and not parquet & old_files
    # nothing left in staging, trash or locks for that date
    assert list((tmp_path / "wh" / "_staging" / "recs").glob("ds=2024-05-01*")) == []
    assert _snapshot(tmp_path / "wh" / "_trash" / "recs" / "ds=2024-05-01") == {}
    assert not (tmp_path / "wh" / "_locks" / "recs" / "ds=2024-05-01.lock").exists()
    # the other date is untouched, byte for byte
    assert _snapshot(tmp_path / "wh" / "recs" / "ds=2024-04-30") == other_before
    assertDataFrameEqual(read_table(spark, wh, "recs", OTHER_DS), [(9, "other day")])


def test_failed_audit_leaves_the_published_partition_unchanged(spark, tmp_path):
    wh = str(tmp_path / "wh")
    write_audit_publish(spark.createDataFrame([(1, "good")], SCHEMA), wh, "recs", DS)
    target = tmp_path / "wh" / "recs" / "ds=2024-05-01"
    before = _snapshot(target)

    def audit(df):
        raise ValueError("gate says no")

    bad = spark.createDataFrame([(666, "bad")], SCHEMA)
    with pytest.raises(ValueError, match="gate says no"):
        write_audit_publish(bad, wh, "recs", DS, audit=audit)

    assert _snapshot(target) == before
    assertDataFrameEqual(read_table(spark, wh, "recs", DS), [(1, "good")])
    assert not (tmp_path / "wh" / "_locks" / "recs" / "ds=2024-05-01.lock").exists()


def test_held_lock_blocks_publish(spark, tmp_path):
    wh = str(tmp_path / "wh")
    write_staging(spark.createDataFrame([(1, "x")], SCHEMA), wh, "recs", DS)
    lock = f"{wh}/_locks/recs/ds=2024-05-01.lock"
    fs = Fs(spark, wh)
    assert try_lock(fs, lock, "someone-else") is True
    assert try_lock(fs, lock, "me") is False  # held and fresh

    with pytest.raises(PublishError, match="another run is publishing recs ds=2024-05-01"):
        publish_staged(spark, wh, "recs", DS)

    assert not (tmp_path / "wh" / "recs" / "ds=2024-05-01").exists()
    assert (tmp_path / "wh" / "_staging" / "recs" / "ds=2024-05-01" / "_SUCCESS").exists()
    assert fs.read_text(lock) == "someone-else"  # the other writer's lock is not released

    # a lock older than LOCK_STALE_S is a crashed writer's: it is taken over
    hour_ago = time.time() - 3600
    os.utime(tmp_path / "wh" / "_locks" / "recs" / "ds=2024-05-01.lock", (hour_ago, hour_ago))
    assert try_lock(fs, lock, "me") is True
    assert fs.read_text(lock) == "me"


def test_publish_without_staged_output_fails(spark, tmp_path):
    with pytest.raises(PublishError, match="_SUCCESS is missing"):
        publish_staged(spark, str(tmp_path / "wh"), "recs", DS)


def test_read_table_of_unpublished_date(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="recs for ds=2024-05-01 has not been published"):
        read_table(spark, str(tmp_path / "wh"), "recs", DS)


# Fs takes a local disk directly (os) for its small-file calls, Hadoop's API otherwise: the
# helper tests run both, so the Hadoop path (HDFS, object stores) stays tested on a local disk.
BOTH = pytest.mark.parametrize("direct", [True, False], ids=["disk", "hadoop"])


@BOTH
def test_list_files_skips_metadata_and_hidden_entries(spark, tmp_path, direct):
    root = tmp_path / "landing"
    for rel in [
        "a.csv",
        "dt=2024-05-01/b.csv",
        "_SUCCESS",
        ".a.csv.crc",
        "_temporary/0/c.csv",
        "dt=2024-05-01/.d.csv",
        ".hidden/e.csv",
        "dt=2024-05-01/_committed_1",
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    fs = Fs(spark, str(root), direct=direct)
    assert fs.list_files(str(root)) == [
        f"file:{root}/a.csv",
        f"file:{root}/dt=2024-05-01/b.csv",
    ]
    assert fs.list_files(str(root / "missing")) == []
    assert fs.list_dirs(str(root)) == [".hidden", "_temporary", "dt=2024-05-01"]
    # Hadoop's checksum files are not entries; other hidden names are
    assert fs.list_names(str(root)) == [
        ".hidden",
        "_SUCCESS",
        "_temporary",
        "a.csv",
        "dt=2024-05-01",
    ]
    assert fs.list_names(str(root / "a.csv")) == ["a.csv"]
    assert fs.list_names(str(root / "missing")) == []
    assert fs.list_dirs(str(root / "a.csv")) == []


def test_odd_names_are_listed_as_hadoop_lists_them(spark, tmp_path):
    """A name Hadoop's Path reads differently (an escape, a colon) is listed by Hadoop."""
    root = tmp_path / "landing"
    for rel in ["dt=2024-05-01/a%20b.csv", "c:d.csv", "plain.csv"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    disk, hadoop = Fs(spark, str(root)), Fs(spark, str(root), direct=False)
    assert disk.list_files(str(root)) == hadoop.list_files(str(root))
    assert f"file:{root}/plain.csv" in disk.list_files(str(root))
    assert disk.qualify(f"file://{root}/") == hadoop.qualify(f"file://{root}/") == f"file:{root}"


@BOTH
def test_write_text_read_text_round_trip(spark, tmp_path, direct):
    uri = str(tmp_path / "runs" / "deep" / "note.txt")
    fs = Fs(spark, uri, direct=direct)
    text = 'line one\n{"ünïcödé": "€"}\n\tlast line'
    fs.write_text(uri, text)
    assert fs.read_text(uri) == text
    fs.write_text(uri, "replaced")
    assert fs.read_text(uri) == "replaced"
    # byte for byte: final and blank newlines and carriage returns are kept (a copied model)
    for exact in ("tree\n\nend\n", "a\r\nb\r\n", "", "\n"):
        fs.write_text(uri, exact)
        assert fs.read_text(uri) == exact
        assert (tmp_path / "runs" / "deep" / "note.txt").read_bytes() == exact.encode()
    # written through a temporary name: nothing else is left beside it (Hadoop's .crc aside)
    assert [p for p in _tree(tmp_path / "runs" / "deep") if not p.endswith(".crc")] == ["note.txt"]


@BOTH
def test_file_calls_agree_with_the_disk(spark, tmp_path, direct):
    """Each small-file call against what os and hashlib say of the same files."""
    import hashlib

    root = tmp_path / "wh"
    fs = Fs(spark, f"file:{root}", direct=direct)
    data = "x" * 1000 + "é"
    uri = f"file:{root}/a/b/c.json"
    assert not fs.exists(uri) and not fs.exists(str(root))
    fs.write_text(uri, data)
    assert fs.exists(uri) and fs.exists(f"{root}/a/b/c.json") and fs.exists(f"file://{root}/a")
    assert (root / "a/b/c.json").read_text(encoding="utf-8") == data
    assert fs.size(uri) == len(data.encode("utf-8")) == (root / "a/b/c.json").stat().st_size
    assert fs.sha256(uri) == hashlib.sha256(data.encode("utf-8")).hexdigest()
    assert 0 <= fs.age_s(uri) < 60
    os.utime(root / "a/b/c.json", (time.time() - 3600, time.time() - 3600))
    assert 3590 < fs.age_s(uri) < 3700
    fs.mkdirs(f"{root}/d/e")
    fs.mkdirs(f"{root}/d/e")  # already there: no error
    assert (root / "d/e").is_dir()
    assert fs.list_dirs(str(root)) == ["a", "d"]
    fs.delete(f"{root}/a/b/c.json")  # a file, with its checksum file if Hadoop wrote one
    assert not (root / "a/b/c.json").exists() and list((root / "a/b").iterdir()) == []
    fs.delete(f"{root}/d")  # a folder, recursively
    fs.delete(f"{root}/missing")  # nothing there: no error
    assert _tree(root) == ["a", "a/b"]


def test_a_text_written_on_the_disk_reads_back_through_hadoop(spark, tmp_path):
    """Replacing a file Hadoop wrote (with its checksum file) directly: Hadoop's reader still
    reads it, as it checks a checksum file only when there is one."""
    uri = str(tmp_path / "runs" / "note.json")
    hadoop, disk = Fs(spark, uri, direct=False), Fs(spark, uri)
    hadoop.write_text(uri, "old text")
    assert (tmp_path / "runs" / ".note.json.crc").exists()
    disk.write_text(uri, "new text, longer than the old one")
    assert hadoop.read_text(uri) == "new text, longer than the old one"
    assert spark.read.text(uri).first()[0] == "new text, longer than the old one"
    hadoop.write_text(uri, "old text")  # the same for the atomic replace of latest pointers
    disk.replace_text(uri, "replaced in one step")
    assert hadoop.read_text(uri) == "replaced in one step"


def test_run_records_round_trip(spark, tmp_path):
    wh = str(tmp_path / "wh")
    write_record(spark, wh, DS, "score", {"counts": {"users": 3}, "ds": DS})
    assert read_record(spark, wh, DS, "score") == {"counts": {"users": 3}, "ds": "2024-05-01"}
    assert (tmp_path / "wh" / "_runs" / "ds=2024-05-01" / "score.json").exists()
    assert read_record(spark, wh, DS, "missing") is None


def _stage_all(spark, wh: str, rows: dict[str, list[tuple]], attempt: str) -> None:
    for table, data in rows.items():
        write_staging(spark.createDataFrame(data, SCHEMA), wh, table, DS, attempt)


def test_a_set_publishes_every_table_or_none(spark, tmp_path, monkeypatch):
    wh = str(tmp_path / "wh")
    _stage_all(spark, wh, {"a": [(1, "a1")], "b": [(1, "b1")], "c": [(1, "c1")]}, "one")
    publish_staged_set(spark, wh, ["c", "a", "b"], DS, "one")
    old = {t: _snapshot(tmp_path / "wh" / t / "ds=2024-05-01") for t in "abc"}

    _stage_all(spark, wh, {"a": [(2, "a2")], "b": [(2, "b2")], "c": [(2, "c2")]}, "two")
    real_rename = Fs.rename
    moves: list[str] = []

    def rename(self, src, dst):
        if "/_staging/" in src and "/_staging/" not in dst:
            moves.append(Path(dst).parent.name)
            if len(moves) == 3:
                raise PublishError("injected: the third table cannot move")
        real_rename(self, src, dst)

    monkeypatch.setattr(Fs, "rename", rename)
    with pytest.raises(PublishError, match="injected"):
        publish_staged_set(spark, wh, ["c", "a", "b"], DS, "two")
    monkeypatch.undo()

    assert moves == ["a", "b", "c"]  # name order; a and b had moved when c failed
    for t in "abc":  # all three are the earlier partitions again, byte for byte
        assert _snapshot(tmp_path / "wh" / t / "ds=2024-05-01") == old[t]
    for folder in ("_trash", "_locks", "_txn"):
        assert _snapshot(tmp_path / "wh" / folder) == {}

    # the retry stages again (a failed attempt's output is not kept) and publishes the whole set
    _stage_all(spark, wh, {"a": [(2, "a2")], "b": [(2, "b2")], "c": [(2, "c2")]}, "retry")
    publish_staged_set(spark, wh, ["a", "b", "c"], DS, "retry")
    for t in "abc":
        assertDataFrameEqual(read_table(spark, wh, t, DS), [(2, f"{t}2")])


def test_a_set_left_half_done_by_a_dead_process_is_undone_first(spark, tmp_path):
    """Replays what a publisher killed between two moves leaves behind, then publishes again."""
    wh = str(tmp_path / "wh")
    root = tmp_path / "wh"
    _stage_all(spark, wh, {"a": [(1, "a1")], "b": [(1, "b1")]}, "one")
    publish_staged_set(spark, wh, ["a", "b"], DS, "one")
    old = {t: _snapshot(root / t / "ds=2024-05-01") for t in "ab"}

    # The dead publisher: its journal, its lock (held by a pid that no longer exists), table a
    # moved aside and replaced, table b moved aside but its new partition never moved in.
    _stage_all(spark, wh, {"a": [(2, "a2")], "b": [(2, "b2")]}, "dead")
    fs = Fs(spark, wh)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    holder = json.dumps({"id": "dead", "host": socket.gethostname(), "pid": int(dead.stdout)})
    assert try_lock(fs, f"{wh}/_locks/a/ds=2024-05-01.lock", holder)
    fs.write_text(
        f"{wh}/_txn/ds=2024-05-01/dead.json",
        json.dumps({"owner": "dead", "had_old": {"a": True, "b": True}}),
    )
    fs.rename(f"{wh}/a/ds=2024-05-01", f"{wh}/_trash/a/ds=2024-05-01/dead")
    fs.rename(f"{wh}/_staging/a/ds=2024-05-01.attempt-dead", f"{wh}/a/ds=2024-05-01")
    fs.rename(f"{wh}/b/ds=2024-05-01", f"{wh}/_trash/b/ds=2024-05-01/dead")
    assert not (root / "b" / "ds=2024-05-01").exists()  # what readers see until the next run

    # The next publisher takes the dead holder's lock at once, undoes the half-done set
    # (a and b back to the earlier partitions), then publishes its own.
    _stage_all(spark, wh, {"a": [(3, "a3")], "b": [(3, "b3")]}, "next")
    real_undo = publish._undo
    undone: list[dict[str, bytes]] = []

    def spy(fs_, wh_, tables, ds, owner, had_old):
        real_undo(fs_, wh_, tables, ds, owner, had_old)
        undone.extend(_snapshot(root / t / "ds=2024-05-01") for t in tables)

    publish._undo = spy
    try:
        publish_staged_set(spark, wh, ["a", "b"], DS, "next")
    finally:
        publish._undo = real_undo
    assert undone == [old["a"], old["b"]]
    for t in "ab":
        assertDataFrameEqual(read_table(spark, wh, t, DS), [(3, f"{t}3")])
    for folder in ("_trash", "_locks", "_txn"):
        assert _snapshot(root / folder) == {}


def test_a_lock_held_by_a_live_process_is_respected(spark, tmp_path):
    wh = str(tmp_path / "wh")
    fs = Fs(spark, wh)
    live = json.dumps({"id": "x", "host": socket.gethostname(), "pid": os.getppid()})
    lock = f"{wh}/_locks/recs/ds=2024-05-01.lock"
    assert try_lock(fs, lock, live)
    assert try_lock(fs, lock, lock_holder()) is False
    elsewhere = json.dumps({"id": "y", "host": "another-host", "pid": 1})
    fs.delete(lock)
    assert try_lock(fs, lock, elsewhere)
    assert try_lock(fs, lock, lock_holder()) is False  # another host's process: cannot tell


def test_a_model_is_published_and_read_back_through_the_filesystem(spark, tmp_path):
    wh = str(tmp_path / "wh")
    assert read_model(spark, wh, "ranker", DS) is None
    publish_model(spark, wh, "ranker", DS, "tree\n", {"model_version": "v1"})
    publish_model(spark, wh, "ranker", DS, "tree 2", {"model_version": "v2"})
    folder = tmp_path / "wh" / "ranker" / "ds=2024-05-01"
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".crc")) == [
        "_SUCCESS",
        "meta.json",
        "model.txt",
    ]
    assert (folder / "meta.json").read_text() == '{\n  "model_version": "v2"\n}'
    assert read_model(spark, f"file://{wh}", "ranker", DS) == ({"model_version": "v2"}, "tree 2")
    for leftovers in ("_staging", "_trash", "_locks", "_txn"):
        assert _snapshot(tmp_path / "wh" / leftovers) == {}


def test_publish_hooks_explain_a_write_error_and_stop_before_the_audits(spark, tmp_path):
    wh = str(tmp_path / "wh")
    good = spark.createDataFrame([(1, "a")], SCHEMA)
    write_audit_publish_set({"a": (good, None)}, wh, DS)
    before = _snapshot(tmp_path / "wh" / "a")
    audited: list[str] = []

    def audit(df):
        audited.append("ran")
        return {}

    class Lost(RuntimeError):
        pass

    def check(staged):
        assert sorted(staged) == ["a", "b"] and staged["a"].count() == 2
        raise Lost("2 in, 1 accounted for")

    two = spark.createDataFrame([(2, "b"), (3, "c")], SCHEMA)
    with pytest.raises(Lost):
        write_audit_publish_set({"a": (two, audit), "b": (two, audit)}, wh, DS, before_audit=check)
    assert audited == []

    def unreadable(exc):
        return Lost(f"explained: {type(exc).__name__}")

    broken = spark.createDataFrame([(4, "d")], SCHEMA).selectExpr("id", "raise_error('x') AS v")
    with pytest.raises(Lost, match="explained"):
        write_audit_publish_set({"a": (broken, audit)}, wh, DS, explain_write_error=unreadable)
    assert _snapshot(tmp_path / "wh" / "a") == before
    assert list((tmp_path / "wh" / "_staging").rglob("ds=*")) == []
