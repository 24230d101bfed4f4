"""The weekly cadence of the ranker and the ALS selection on real nights (cadence.py; an
option, on in reliability_kit.PIPELINE_OVERRIDES).

The reference's two nights, EARLIER_DS (Thursday 2024-05-09) and DS (Friday), share the anchor
Monday 2024-05-06: the first night of the week to run learns both as of the end of that Monday,
and DS copies them. That copying changes nothing is test_schedule_independence's: DS alone on a
fresh warehouse trains them itself, and every table, the ranker's files included, is the
reference's. Here: that DS did copy, and that an input of the anchor's past changing makes it
learn again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

from reliability_kit import (
    DS,
    EARLIER_DS,
    EVENTS_HEADER,
    copy_warehouse,
    csv_text,
    file_snapshot,
    full_pipeline,
    iso,
    item_id,
    resolved_configs,
    run_record,
    run_stage,
    write,
)

ANCHOR = date(2024, 5, 6)  # the Monday at or before both nights, from the calendar


def test_the_second_night_of_a_week_copies_the_first_nights_model(
    reference_published: Path,
) -> None:
    wh = reference_published
    for ds in (EARLIER_DS, DS):
        ranker = run_record(wh, ds, "train_ranker")
        assert ranker["trained_as_of"] == ANCHOR.isoformat()
        assert ranker["window_end"].startswith("2024-05-07T00:00:00")  # the end of the Monday
        assert run_record(wh, ds, "train_als")["cadence"]["anchor"] == ANCHOR.isoformat()
    for stage in ("train_ranker", "train_als"):
        assert run_record(wh, EARLIER_DS, stage)["cadence"]["reused_from"] is None
        assert run_record(wh, DS, stage)["cadence"]["reused_from"] == EARLIER_DS.isoformat()
    assert (
        run_record(wh, DS, "train_als")["chosen"]
        == run_record(wh, EARLIER_DS, "train_als")["chosen"]
    )
    assert file_snapshot(wh / "ranker" / f"ds={DS}") == file_snapshot(
        wh / "ranker" / f"ds={EARLIER_DS}"
    )


def test_an_event_of_the_anchors_past_arriving_late_makes_the_night_learn_again(
    spark: Any, standard_landing: Path, reference_published: Path, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(standard_landing, landing)
    late = [("b-u2", item_id(9), iso(date(2024, 5, 5), 3600), "purchase", "1", "14.50")]
    write(landing / "events" / "arrived_late.csv", csv_text(EVENTS_HEADER, late))
    wh = copy_warehouse(reference_published, tmp_path / "warehouse", drop=DS)
    full_pipeline(spark, landing, wh, DS)
    for stage in ("train_ranker", "train_als"):
        mine, earlier = run_record(wh, DS, stage), run_record(wh, EARLIER_DS, stage)
        assert mine["cadence"]["reused_from"] is None, stage
        assert mine["cadence"]["key"] != earlier["cadence"]["key"], stage
    assert run_record(wh, DS, "train_als")["cadence"]["events"]["events"] == (
        run_record(wh, EARLIER_DS, "train_als")["cadence"]["events"]["events"] + 1
    )


def test_a_copied_model_keeps_every_byte_and_a_mismatched_one_is_not_copied(
    spark: Any, reference_published: Path, tmp_path: Path
) -> None:
    """The week's model as another night wrote it (here a text with blank lines and a final
    newline, as LightGBM writes them) is published byte for byte; a text that is not the one
    its meta describes (a re-run swapped in between reads) is trained again instead."""
    wh = copy_warehouse(reference_published, tmp_path / "warehouse")
    earlier = wh / "ranker" / f"ds={EARLIER_DS}"
    text = "tree\nversion=v4\n\nend of trees\n\npandas_categorical:null\n"
    meta = json.loads((earlier / "meta.json").read_text())
    meta["model_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (earlier / "model.txt").write_text(text)
    (earlier / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    for crc in earlier.glob(".*.crc"):  # Hadoop's checksums of the files replaced above
        crc.unlink()
    cfg = resolved_configs(wh.parent / "unused", wh, DS)["train_ranker"]
    record = run_stage(spark, "train_ranker", cfg)
    assert record["cadence"]["reused_from"] == EARLIER_DS.isoformat()
    assert (wh / "ranker" / f"ds={DS}" / "model.txt").read_bytes() == text.encode()
    assert json.loads((wh / "ranker" / f"ds={DS}" / "meta.json").read_text()) == meta

    (earlier / "model.txt").write_text(text + "tree\n")  # no longer the text its meta names
    (earlier / ".model.txt.crc").unlink(missing_ok=True)
    record = run_stage(spark, "train_ranker", cfg)
    assert record["cadence"]["reused_from"] is None
    assert (wh / "ranker" / f"ds={DS}" / "model.txt").read_text() == ""  # trained: a blend
