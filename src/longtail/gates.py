"""Great Expectations gates: one expectation suite per published table.

A gate runs on the staged output of a stage, before anything downstream can read it; a failed gate
raises GateFailed and nothing is published. The full validation result is returned so the stage
records it with the run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from longtail import columns as C
from longtail import tables
from longtail.errors import PermanentError
from longtail.rules import Rules
from longtail.spark_jobs import counted_gate
from longtail.warehouse.records import DATA_DOCS_HTML

SCORE_DROP = "_score_drop"
# Checked columns of the reasons (schema v2): the item is there exactly when the code needs one,
# and it is one of the user's own history items.
REASON_PAIRED = "_reason_paired"
REASON_IN_HISTORY = "_reason_in_history"
# Checked columns of the shop's rules in the recommendations gate.
RULE_ALLOWED = "_allowed"


class GateFailed(PermanentError, RuntimeError):
    """A data-quality gate failed; the message lists the failed expectations.

    Carries the full validation result and its rendered GX data docs page, which the gate record
    keeps under `_runs/ds=<ds>/gates/<table>.{json,html}` (longtail.warehouse.records).
    """

    def __init__(self, message: str, result: dict | None = None, html: str | None = None):
        super().__init__(message)
        self.result = result
        self.data_docs_html = html  # records.DATA_DOCS_HTML


def _data_docs(result: Any) -> str | None:
    """The validation result as a GX data docs HTML page (best effort: never fails a gate)."""
    try:
        from great_expectations.render.renderer import ValidationResultsPageRenderer
        from great_expectations.render.view import DefaultJinjaPageView

        return DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))
    except Exception:  # rendering is a report, not a check
        return None


def _gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx  # heavy: imported only when a gate runs

    return gx


def pandas_max_rows() -> int:
    """Tables up to this many rows are validated on a pandas copy; larger ones inside Spark.

    GX on Spark runs several Spark jobs per expectation, seconds each however small the table;
    the same suite on a pandas copy of a small table takes a fraction of a second. The
    item_audiences suite on 874,500 rows: 13.4 s in Spark, 3.5 s on a pandas copy; a
    copy of a million rows of a published table is a few hundred MB on the driver. Set
    LONGTAIL_GATE_PANDAS_MAX_ROWS=0 to validate everything in Spark.
    """
    return int(os.environ.get("LONGTAIL_GATE_PANDAS_MAX_ROWS", "1000000"))


def run_suite(
    df: DataFrame, name: str, expectations: Sequence[Any], sized_by: DataFrame | None = None
) -> dict:
    """Validate df against expectations; raise GateFailed with the failures, else return results.

    sized_by: the table df checks, when df adds check columns through joins that match each row
    at most once (see small_copy); its planned size, not df's, picks the path."""
    with counted_gate(df.sparkSession, name):
        return _run_suite(_gx(), df, name, expectations, sized_by)


def _run_suite(
    gx: Any,
    df: DataFrame,
    name: str,
    expectations: Sequence[Any],
    sized_by: DataFrame | None = None,
) -> dict:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    max_rows = pandas_max_rows()
    copy = small_copy(df, max_rows, sized_by)
    if copy is not None:
        return _validate(gx, ctx, copy, name, expectations)
    # The checked frame (windows, joins to other tables) is computed once: GX runs several Spark
    # jobs per expectation, each of which would otherwise recompute it from the files.
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        data = df.toPandas() if df.count() <= max_rows else df
        return _validate(gx, ctx, data, name, expectations)
    finally:
        df.unpersist()


# Below this planned size (Spark's estimate of the frame's bytes, from its files' sizes; no job
# runs to get it) a gate first tries a pandas copy in one job, capped at pandas_max_rows() + 1
# rows. The published tables plan at 9-19 bytes a row (1,600 with an embedding), so a table
# under the cap plans well below it; a larger frame, or a copy that hits the cap, takes the
# count-then-choose path, which runs the frame twice.
SMALL_PLAN_BYTES = 16 * 1024 * 1024


def small_copy(df: DataFrame, max_rows: int, sized_by: DataFrame | None = None) -> Any | None:
    """df as pandas in one Spark job when it plans small and has at most max_rows rows, else
    None. Why: on small tables the persist + count + copy of the general path costs two to three
    times the copy alone (a test night's 13 gates spent most of their time there).

    sized_by (default df) is what is planned. Spark estimates a join at the product of its
    sides' sizes (the sample's recommendations joined to the shoppers' histories: terabytes),
    so a gate whose check columns come from joins sizes itself by the table it checks; the row
    cap still bounds the copy."""
    if max_rows <= 0:
        return None
    plan = (sized_by if sized_by is not None else df)._jdf.queryExecution().optimizedPlan()  # type: ignore[attr-defined]
    planned = int(str(plan.stats().sizeInBytes()))
    if planned > SMALL_PLAN_BYTES:
        return None
    data = df.limit(max_rows + 1).toPandas()
    return data if len(data) <= max_rows else None


def _validate(gx: Any, ctx: Any, data: Any, name: str, expectations: Sequence[Any]) -> dict:
    """Validate data (a pandas copy or the Spark frame itself) with GX's matching engine."""
    spark_frame = isinstance(data, DataFrame)
    source = (
        ctx.data_sources.add_spark(name="spark")
        if spark_frame
        else ctx.data_sources.add_pandas(name="pandas")
    )
    asset = source.add_dataframe_asset(name=name)
    batch = asset.add_batch_definition_whole_dataframe("whole")
    suite = ctx.suites.add(gx.ExpectationSuite(name=name, expectations=list(expectations)))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    result = vd.run(batch_parameters={"dataframe": data})
    summary = result.describe_dict()
    html = _data_docs(result)
    if not result.success:
        failed = [
            f"{e['expectation_type']}({_kw(e['kwargs'])}): {_observed(e['result'])}"
            for e in summary["expectations"]
            if not e["success"]
        ]
        raise GateFailed(f"gate '{name}' failed: " + "; ".join(failed), summary, html)
    if html is not None:
        summary[DATA_DOCS_HTML] = html
    return summary


def _kw(kwargs: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in kwargs.items() if k != "batch_id")


def _observed(result: dict) -> str:
    if "observed_value" in result:
        return f"observed {result['observed_value']}"
    examples = result.get("partial_unexpected_list", [])[:5]
    return f"{result.get('unexpected_count')} unexpected, e.g. {examples}"


def _e() -> Any:
    return _gx().expectations


def _window_end(ds: date) -> str:
    return datetime.combine(ds + timedelta(days=1), datetime.min.time()).isoformat(sep=" ")


def gate_bronze(df: DataFrame, required: Sequence[str]) -> dict:
    """A bronze table as ingest read it: the landing contract's required columns and the file
    each row came from."""
    e = _e()
    return run_suite(
        df,
        "bronze",
        [
            *(e.ExpectColumnToExist(column=c) for c in (*required, C.SOURCE_FILE)),
            e.ExpectColumnValuesToNotBeNull(column=C.SOURCE_FILE),
        ],
    )


def gate_events(df: DataFrame, ds: date, event_types: Sequence[str] = C.EVENT_TYPES) -> dict:
    e = _e()
    return run_suite(
        df,
        "silver_events",
        [
            *(e.ExpectColumnValuesToNotBeNull(column=c) for c in (C.USER_ID, C.ITEM_ID, C.TS)),
            e.ExpectColumnValuesToBeInSet(column=C.EVENT_TYPE, value_set=list(event_types)),
            e.ExpectColumnValuesToBeBetween(column=C.WEIGHT, min_value=0, strict_min=True),
            e.ExpectColumnMaxToBeBetween(column=C.TS, max_value=_window_end(ds), strict_max=True),
            e.ExpectTableRowCountToBeBetween(min_value=1),
        ],
    )


def gate_catalogue(df: DataFrame) -> dict:
    e = _e()
    return run_suite(
        df,
        "catalogue",
        [
            e.ExpectColumnValuesToNotBeNull(column=C.ITEM_ID),
            e.ExpectColumnValuesToBeUnique(column=C.ITEM_ID),
            e.ExpectColumnValuesToNotBeNull(column=C.TITLE),
            e.ExpectTableRowCountToBeBetween(min_value=1),
        ],
    )


def gate_interactions(df: DataFrame) -> dict:
    e = _e()
    return run_suite(
        df,
        "interactions",
        [
            e.ExpectColumnValuesToNotBeNull(column=C.USER_ID),
            e.ExpectColumnValuesToNotBeNull(column=C.ITEM_ID),
            e.ExpectCompoundColumnsToBeUnique(column_list=[C.USER_ID, C.ITEM_ID]),
            e.ExpectColumnValuesToBeBetween(column=C.WEIGHT, min_value=0, strict_min=True),
            e.ExpectTableRowCountToBeBetween(min_value=1),
        ],
    )


def gate_item_stats(df: DataFrame) -> dict:
    """One row per interacted catalogue item; recent users a subset of all its users."""
    e = _e()
    return run_suite(
        df,
        "item_stats",
        [
            *(e.ExpectColumnValuesToNotBeNull(column=c) for c in (C.ITEM_ID, "first_ts")),
            e.ExpectColumnValuesToBeUnique(column=C.ITEM_ID),
            e.ExpectColumnValuesToBeBetween(column="n_users", min_value=1),
            e.ExpectColumnValuesToBeBetween(column="n_recent_users", min_value=0),
            e.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="n_users", column_B="n_recent_users", or_equal=True
            ),
        ],
    )


def gate_cooccurrence(df: DataFrame, top: int) -> dict:
    """Each item's neighbours: distinct, never itself, cosine in (0, 1], at most top of them."""
    e = _e()
    per_item = Window.partitionBy(C.ITEM_ID)
    checked = df.select(
        C.ITEM_ID,
        "neighbour_id",
        C.SCORE,
        (F.col(C.ITEM_ID) == F.col("neighbour_id")).alias("is_self"),
        F.count(F.lit(1)).over(per_item).alias("n_neighbours"),
    )
    return run_suite(
        checked,
        "item_cooccurrence",
        [
            *(e.ExpectColumnValuesToNotBeNull(column=c) for c in (C.ITEM_ID, "neighbour_id")),
            e.ExpectCompoundColumnsToBeUnique(column_list=[C.ITEM_ID, "neighbour_id"]),
            e.ExpectColumnValuesToBeInSet(column="is_self", value_set=[False]),
            e.ExpectColumnValuesToBeBetween(
                column=C.SCORE, min_value=0, max_value=1 + 1e-9, strict_min=True
            ),
            e.ExpectColumnValuesToBeBetween(column="n_neighbours", max_value=top),
        ],
    )


def gate_factors(df: DataFrame, key: str, dim: int, column: str = C.FACTORS) -> dict:
    """Vectors (ALS factors, text embeddings): one per key, the right length, all finite."""
    e = _e()
    checked = df.select(key, F.size(column).alias("dim"), _all_finite(column).alias("finite"))
    return run_suite(
        checked,
        f"{column}_{key}",
        [
            e.ExpectColumnValuesToNotBeNull(column=key),
            e.ExpectColumnValuesToBeUnique(column=key),
            e.ExpectColumnValuesToBeBetween(column="dim", min_value=dim, max_value=dim),
            e.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
            e.ExpectTableRowCountToBeBetween(min_value=1),
        ],
    )


def _all_finite(col: str) -> Any:
    return F.forall(F.col(col), lambda x: ~F.isnan(x) & (F.abs(x) < float("inf")))


def allowed_item(items: DataFrame, rules: Rules | None) -> Column:
    """Over catalogue rows: available (absent = true) and not excluded by the shop's rules."""
    ok = (
        F.coalesce(F.col(C.AVAILABLE), F.lit(True)) if C.AVAILABLE in items.columns else F.lit(True)
    )
    if rules is None:
        return ok
    for column, values in (
        (C.ITEM_ID, rules.exclude.item_ids),
        (C.CATEGORY, rules.exclude.categories),
        (C.BRAND, rules.exclude.brands),
    ):
        if values:
            ok = ok & ~F.coalesce(F.col(column).isin(list(values)), F.lit(False))
    return ok


def _rule_checks(
    df: DataFrame, items: DataFrame, rules: Rules | None
) -> tuple[DataFrame, list[str], list[Any]]:
    """The recommendations with one column per rule to check: RULE_ALLOWED (the item may be
    shown) and, per cap, the user's count of items in the row's group (0 without a group)."""
    e = _e()
    caps = []
    if rules is not None:
        caps = [
            (c, n)
            for c, n in ((C.CATEGORY, rules.max_per_category), (C.BRAND, rules.max_per_brand))
            if n is not None
        ]
    flags = items.select(
        F.col(C.ITEM_ID).alias("_item"),
        allowed_item(items, rules).alias(RULE_ALLOWED),
        *(F.col(c).alias(f"_group_{c}") for c, _ in caps),
    )
    out = df.join(F.broadcast(flags), F.col(C.ITEM_ID) == F.col("_item"), "left").drop("_item")
    out = out.withColumn(RULE_ALLOWED, F.coalesce(F.col(RULE_ALLOWED), F.lit(False)))
    names, expectations = (
        [RULE_ALLOWED],
        [e.ExpectColumnValuesToBeInSet(column=RULE_ALLOWED, value_set=[True])],
    )
    for column, cap in caps:
        group, name = f"_group_{column}", f"_per_{column}"
        count = F.count(F.lit(1)).over(Window.partitionBy(C.USER_ID, group))
        out = out.withColumn(name, F.when(F.col(group).isNull(), 0).otherwise(count)).drop(group)
        names.append(name)
        expectations.append(e.ExpectColumnValuesToBeBetween(column=name, max_value=cap))
    return out, names, expectations


def _reason_checks(
    df: DataFrame, history: DataFrame | None, codes: Sequence[str], item_codes: Sequence[str]
) -> tuple[DataFrame, list[str], list[Any]]:
    """REASON_PAIRED: reason_item_id is non-null exactly when the reason is one of item_codes;
    given the interactions (history), REASON_IN_HISTORY: a reason item is the user's own."""
    e = _e()
    needs = F.coalesce(F.col(C.REASON).isin(list(item_codes)), F.lit(False))
    out = df.withColumn(REASON_PAIRED, F.col(C.REASON_ITEM_ID).isNotNull() == needs)
    names = [REASON_PAIRED]
    expectations = [
        e.ExpectColumnValuesToBeInSet(column=C.REASON, value_set=list(codes)),
        e.ExpectColumnValuesToBeInSet(column=REASON_PAIRED, value_set=[True]),
    ]
    if history is not None:
        owned = history.select(
            F.col(C.USER_ID).alias("_hu"), F.col(C.ITEM_ID).alias("_hi"), F.lit(True).alias("_own")
        ).distinct()
        out = out.join(
            owned,
            (F.col(C.USER_ID) == F.col("_hu")) & (F.col(C.REASON_ITEM_ID) == F.col("_hi")),
            "left",
        )
        out = out.withColumn(
            REASON_IN_HISTORY, F.col(C.REASON_ITEM_ID).isNull() | F.col("_own").isNotNull()
        ).drop("_hu", "_hi", "_own")
        names.append(REASON_IN_HISTORY)
        expectations.append(
            e.ExpectColumnValuesToBeInSet(column=REASON_IN_HISTORY, value_set=[True])
        )
    return out, names, expectations


def gate_recommendations(
    df: DataFrame,
    top_n: int,
    expected_users: int,
    sources: Sequence[str],
    items: DataFrame | None = None,
    rules: Rules | None = None,
    history: DataFrame | None = None,
) -> dict:
    """Output contract: exactly top_n distinct items per user, ranks 1..N, scores non-increasing,
    known reason codes with a reason item exactly where the code has one; given the catalogue
    (items), also the shop's rules: every item available and not excluded, every cap held; given
    the interactions (history), every reason item one of the user's own."""
    from longtail.reasons import CODES, ITEM_REASONS  # reasons imports fusion: numpy side only

    e = _e()
    by_user = Window.partitionBy(C.USER_ID).orderBy(C.RANK)
    checked = df.withColumn(SCORE_DROP, F.lag(C.SCORE).over(by_user) - F.col(C.SCORE))
    checked, reason_columns, reason_expectations = _reason_checks(
        checked, history, CODES, ITEM_REASONS
    )
    rule_columns: list[str] = []
    rule_expectations: list[Any] = []
    if items is not None:
        checked, rule_columns, rule_expectations = _rule_checks(checked, items, rules)
    return run_suite(
        checked,
        "recommendations",
        [
            e.ExpectTableColumnsToMatchSet(
                column_set=[*C.RECOMMENDATION_COLUMNS, SCORE_DROP, *reason_columns, *rule_columns],
                exact_match=True,
            ),
            *(e.ExpectColumnValuesToNotBeNull(column=c) for c in C.REQUIRED_RECOMMENDATION_COLUMNS),
            e.ExpectColumnValuesToBeBetween(column=C.RANK, min_value=1, max_value=top_n),
            e.ExpectCompoundColumnsToBeUnique(column_list=[C.USER_ID, C.RANK]),
            e.ExpectCompoundColumnsToBeUnique(column_list=[C.USER_ID, C.ITEM_ID]),
            e.ExpectColumnValuesToBeBetween(column=SCORE_DROP, min_value=0),
            e.ExpectColumnValuesToBeInSet(column=C.SOURCE, value_set=list(sources)),
            e.ExpectTableRowCountToEqual(value=expected_users * top_n),
            *reason_expectations,
            *rule_expectations,
        ],
        sized_by=df,
    )


def gate_similar(df: DataFrame, n_items: int, k: int, hidden: Sequence[str] = ()) -> dict:
    """Similar-items contract; hidden: items unavailable or excluded by the shop's rules on the
    night, never anyone's similar item (checked only when there are some)."""
    e = _e()
    rules = [e.ExpectColumnValuesToNotBeInSet(column=C.SIMILAR_ITEM_ID, value_set=list(hidden))]
    w = Window.partitionBy(C.ITEM_ID).orderBy(C.RANK)
    checked = df.withColumn("_drop", F.lag(C.SCORE).over(w) - F.col(C.SCORE)).withColumn(
        "_self", F.col(C.ITEM_ID) == F.col(C.SIMILAR_ITEM_ID)
    )
    return run_suite(
        checked,
        tables.SIMILAR_ITEMS,
        [
            *(e.ExpectColumnValuesToNotBeNull(column=c) for c in C.SIMILAR_ITEM_COLUMNS),
            e.ExpectColumnValuesToBeBetween(column=C.RANK, min_value=1, max_value=k),
            e.ExpectCompoundColumnsToBeUnique(column_list=[C.ITEM_ID, C.RANK]),
            e.ExpectCompoundColumnsToBeUnique(column_list=[C.ITEM_ID, C.SIMILAR_ITEM_ID]),
            e.ExpectColumnValuesToBeInSet(column="_self", value_set=[False]),
            e.ExpectColumnValuesToBeBetween(column="_drop", min_value=0),
            e.ExpectColumnValuesToBeInSet(
                column=C.SOURCE, value_set=["content", "cooccurrence", "content+cooccurrence"]
            ),
            e.ExpectTableRowCountToEqual(value=n_items * k),
            *(rules if len(hidden) else []),
        ],
    )


AUDIENCE_OWNED = "_owned"
AUDIENCE_RANK_OK = "_rank_ok"
AUDIENCE_RANK_REPEATED = "_rank_repeated"
AUDIENCE_USER_REPEATED = "_user_repeated"
AUDIENCE_TARGET = "_target"


def gate_item_audiences(
    df: DataFrame, k: int, targets: Sequence[str], history: DataFrame | None = None
) -> dict:
    """item_audiences contract: only the night's target items, ranks 1..n without gaps per item
    (n at most k), unique (item, rank) and (item, user), scores non-increasing, at most k rows
    per target; given the interactions (history), no shopper who already owns the item.

    The table is targets x k rows (16x scale shop: 4M), so every check is a column computed in
    Spark in one pass (windows, a join to the broadcast targets) and the suite checks those
    columns: GX's own compound-uniqueness and value-set expectations on Spark took 141 s there.
    """
    e = _e()
    by_item = Window.partitionBy(C.ITEM_ID).orderBy(C.RANK)
    whole = Window.partitionBy(C.ITEM_ID)
    pair = Window.partitionBy(C.ITEM_ID, C.USER_ID)
    spark = df.sparkSession
    target_ids = spark.createDataFrame([(str(t),) for t in targets], "_t string")
    checked = (
        df.withColumn(SCORE_DROP, F.lag(C.SCORE).over(by_item) - F.col(C.SCORE))
        .withColumn(
            AUDIENCE_RANK_REPEATED,
            F.coalesce(F.lag(C.RANK).over(by_item) == F.col(C.RANK), F.lit(False)),
        )
        .withColumn(AUDIENCE_RANK_OK, F.col(C.RANK) <= F.count("*").over(whole))
        .withColumn(AUDIENCE_USER_REPEATED, F.count("*").over(pair) > 1)
        .join(F.broadcast(target_ids), F.col(C.ITEM_ID) == F.col("_t"), "left")
        .withColumn(AUDIENCE_TARGET, F.col("_t").isNotNull())
        .drop("_t")
    )
    columns = [
        SCORE_DROP,
        AUDIENCE_RANK_REPEATED,
        AUDIENCE_RANK_OK,
        AUDIENCE_USER_REPEATED,
        AUDIENCE_TARGET,
    ]
    owned_checks = []
    if history is not None:
        owned = history.where(F.col("exclude")).select(
            F.col(C.USER_ID).alias("_hu"), F.col(C.ITEM_ID).alias("_hi"), F.lit(True).alias("_o")
        )
        checked = checked.join(
            owned.distinct(),
            (F.col(C.USER_ID) == F.col("_hu")) & (F.col(C.ITEM_ID) == F.col("_hi")),
            "left",
        )
        checked = checked.withColumn(AUDIENCE_OWNED, F.col("_o").isNotNull()).drop(
            "_hu", "_hi", "_o"
        )
        columns.append(AUDIENCE_OWNED)
        owned_checks.append(e.ExpectColumnValuesToBeInSet(column=AUDIENCE_OWNED, value_set=[False]))
    required = (C.ITEM_ID, C.RANK, C.USER_ID, C.SCORE, "is_new")
    return run_suite(
        checked,
        "item_audiences",
        [
            e.ExpectTableColumnsToMatchSet(
                column_set=[*required, C.REASON_ITEM_ID, *columns], exact_match=True
            ),
            *(e.ExpectColumnValuesToNotBeNull(column=c) for c in required),
            e.ExpectColumnValuesToBeBetween(column=C.RANK, min_value=1, max_value=k),
            e.ExpectColumnValuesToBeInSet(column=AUDIENCE_RANK_REPEATED, value_set=[False]),
            e.ExpectColumnValuesToBeInSet(column=AUDIENCE_USER_REPEATED, value_set=[False]),
            e.ExpectColumnValuesToBeBetween(column=SCORE_DROP, min_value=0),
            e.ExpectColumnValuesToBeInSet(column=AUDIENCE_RANK_OK, value_set=[True]),
            e.ExpectColumnValuesToBeInSet(column=AUDIENCE_TARGET, value_set=[True]),
            e.ExpectTableRowCountToBeBetween(min_value=0, max_value=len(targets) * k),
            *owned_checks,
        ],
        sized_by=df,
    )
