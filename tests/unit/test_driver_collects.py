"""Every place the pipeline pulls Spark data to the driver is listed here, with why it is safe.

The driver is one machine: anything growing with users or events must stay in Spark. The test
scans `src/longtail` (the benchmark, `bench/`, lives outside it) for `.toPandas()`,
`.collect()`, `.toLocalIterator()` and `.toArrow()` calls and fails on any call site whose
enclosing function ("module.function") is not listed below, and on any listed entry that no
longer matches a call site, so the lists stay an honest inventory.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "longtail"
DRIVER_CALLS = frozenset({"toPandas", "collect", "toLocalIterator", "toArrow"})

# Bounded by the catalogue (items) or by a constant.
BOUNDED: dict[str, str] = {
    "longtail.gates._run_suite": "a pandas copy only of tables with at most "
    "LONGTAIL_GATE_PANDAS_MAX_ROWS rows (1M); larger ones are validated in Spark",
    "longtail.gates.small_copy": "at most LONGTAIL_GATE_PANDAS_MAX_ROWS + 1 rows (a limit in "
    "Spark), of a frame planned under 16 MiB",
    "longtail.stages.clean._account": "quarantine counts per (table, reason): a handful of rows",
    "longtail.stages.content._run": "the catalogue, and the distinct text hashes already in the "
    "embedding cache (one per item text): items",
    "longtail.stages.fusion_inputs.catalogue": "the catalogue: items",
    "longtail.stages.fusion_inputs.item_factors": "one ALS factor vector per item: items",
    "longtail.label_window.sample_users": "at most max_train_users user ids (the ranker's sample)",
    "longtail.label_window.labels_of": "the new items of the sampled users only: bounded by "
    "max_train_users x the items each of them first touched inside the window",
    "longtail.stages.train_ranker._training_set": "item statistics (items), and the history "
    "rows of the sampled users only (max_train_users); its co-occurrence neighbours come from "
    "the matrix collected for the ALS fit (longtail.indexing._collect)",
    "longtail.stages.fusion_inputs.embeddings": "one text embedding per item: items",
    "longtail.item_stats.cooccurrence_pairs": "each item's position and capped user count "
    "(the co-occurrence's n): items",
    "longtail.stages.fusion_inputs.space_at": "the item_space tables: per-item statistics and "
    "at most cooccurrence_top neighbours per item, reduced in Spark: items",
    "longtail.evaluation.spark.item_flags": "interaction counts per catalogue item for the "
    "head/tail split: items",
    "longtail.evaluation.spark._row": "one row of aggregates (the quality stage's metrics)",
    "longtail.stages.retention.compact_cache": "embedding-cache rows whose text hash is stored "
    "more than once (nights that embedded the same new text side by side): items",
    "longtail.stages.score._run_als": "popularity per catalogue item and the item factors: items",
    "longtail.stages.score.run.inspect": "recommendation counts per candidate source: a few rows",
    "longtail.stages.score._night_sample": "per partition of the fixed-size exposure sample, "
    "one (item, count) row per item its top 10s show and each sampled user's few best "
    "new-candidate scores: items and sample",
    "longtail.jvm_archive._workload": "the class archive's build: a fixed workload of a few "
    "hundred generated rows, never a shop's data",
    "longtail.session.server.SessionServer._clean": "the catalogue's tables and "
    "temporary views, to drop the views a stage left: a handful of names",
}

# Not bounded, but inherent: implicit's ALS trains on one machine, so the interaction matrix
# must reach the driver. It travels in compact form (int32 coordinates, float64 weights, each id
# string once), and the id lists are the rows of the factor matrices the stage publishes.
DRIVER_TRAINING: dict[str, str] = {
    "longtail.indexing._collect": "(user_idx int32, item_idx int32, weight[, first or last "
    "event]) per interaction, built in Spark: the matrix implicit fits (and the night's "
    "validation window for choosing its settings; train_ranker's co-occurrence neighbours)",
    "longtail.indexing._ids": "the sorted distinct user and item ids: one per row of the "
    "fitted user / item factors",
}

# Still moving user- or event-sized data to the driver: work to remove. Empty means done.
KNOWN_UNBOUNDED: dict[str, str] = {}


def _calls(node: ast.AST, scope: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], ast.Call]]:
    """(enclosing function/class names, call) of every driver call below node."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield from _calls(child, (*scope, child.name))
            continue
        if (
            isinstance(child, ast.Call)
            and isinstance(child.func, ast.Attribute)
            and child.func.attr in DRIVER_CALLS
        ):
            yield scope, child
        yield from _calls(child, scope)


def call_sites(root: Path = SRC) -> Iterator[tuple[str, str, str]]:
    """(module.function, method, file:line) of every driver call in the package."""
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        module = ".".join(("longtail", *rel.with_suffix("").parts))
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for scope, call in _calls(tree, ()):
            name = ".".join((module, *(scope or ("<module>",))))
            assert isinstance(call.func, ast.Attribute)
            yield name, call.func.attr, f"{path.relative_to(SRC.parents[1])}:{call.lineno}"


def test_the_scan_finds_driver_calls():
    sites = {name for name, _, _ in call_sites()}
    assert "longtail.evaluation.spark._row" in sites  # the scan itself works


def test_every_driver_collect_is_listed_with_a_reason():
    lists = {"BOUNDED": BOUNDED, "DRIVER_TRAINING": DRIVER_TRAINING}
    lists["KNOWN_UNBOUNDED"] = KNOWN_UNBOUNDED
    listed = {name: label for label, entries in lists.items() for name in entries}
    assert len(listed) == sum(map(len, lists.values())), "an entry is in more than one list"
    assert all(reason.strip() for entries in lists.values() for reason in entries.values())

    sites = list(call_sites())
    unlisted = [
        f"{where}: .{method}() in {name}" for name, method, where in sites if name not in listed
    ]
    stale = sorted(f"{listed[name]}[{name!r}]" for name in set(listed) - {s[0] for s in sites})
    assert not unlisted, (
        "driver collects not listed in tests/unit/test_driver_collects.py (keep user- and "
        "event-sized data in Spark, or list the site with why it is bounded):\n"
        + "\n".join(unlisted)
    )
    assert not stale, "listed entries that match no call site any more:\n" + "\n".join(stale)
