"""Read a landing folder (the input contract) into typed bronze DataFrames.

Contract: `events/` and `items/` (optional `users/`), files in CSV, CSV.GZ, Parquet or JSON Lines,
optionally under `dt=YYYY-MM-DD/` subfolders. Column names are matched case-insensitively; extra
columns are ignored; a missing required column stops the run naming the file and the column. Rows
that cannot be parsed are kept, flagged with a parse error, and quarantined by the clean stage, so
nothing that arrived is silently dropped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from longtail import columns as C
from longtail.errors import PermanentError
from longtail.warehouse.fs import Fs

CORRUPT = "_corrupt_record"
PARSE_ERROR = "parse_error"
# What a decoder puts where the bytes were not UTF-8 (latin-1 text in a CSV, say).
REPLACEMENT_CHAR = "\ufffd"
# Epoch seconds a timestamp can hold (0001-01-01 .. 9999-12-31 UTC); beyond is not a time.
_MIN_EPOCH_S, _MAX_EPOCH_S = -62135596800, 253402300799
# Working columns of type_events (never in its output).
_TS_TEXT, _QTY_TEXT, _VAL_TEXT, _BAD_ENCODING = "_ts_text", "_qty_text", "_val_text", "_bad_enc"
# Spellings of the items' `available` flag; anything else is quarantined (invalid_availability).
_TRUE, _FALSE = ("true", "1", "yes", "y", "t"), ("false", "0", "no", "n", "f")
_READ_FAILURE = re.compile(r"Encountered error while reading file (\S+?)\.?\s+SQLSTATE", re.S)

_FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".jsonl": "json",
    ".jsonl.gz": "json",
    ".ndjson": "json",
    ".json": "json",
    ".json.gz": "json",
}


class LandingContractError(PermanentError, ValueError):
    """The landing folder breaks the input contract; the message names the file and column."""


def detect_format(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    for suffix in sorted(_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return _FORMATS[suffix]
    raise LandingContractError(
        f"{path}: unsupported file type (expected one of {', '.join(sorted(_FORMATS))})"
    )


def safe_csv_header(line: str) -> list[str] | None:
    """The column names Spark's CSV reader (header on, default options) gives a file whose first
    line is `line`, or None when the line needs its parser (quotes, a byte-order mark).

    Spark names an empty header field `_c<index>` and suffixes the index to every name that
    appears twice ignoring case (`CSVUtils.makeSafeHeader`); checked against Spark itself in
    tests/unit/test_landing_header.py. Without a Spark job per file: a landing folder of daily
    files paid one job each, most of the ingest stage's jobs on a small shop.
    """
    if '"' in line or line.startswith("\ufeff"):
        return None
    names = line.split(",")
    lower = [n.lower() for n in names if n]
    twice = {n for n in lower if lower.count(n) > 1}
    return [
        f"_c{i}" if not n else f"{n}{i}" if n.lower() in twice else n for i, n in enumerate(names)
    ]


def _raw_columns(spark: SparkSession, path: str, fmt: str, fs: Fs | None = None) -> list[str]:
    try:
        if fmt == "csv":
            line = (fs or Fs(spark, path)).first_line(path)
            fast = safe_csv_header(line) if line else None
            if fast is not None:
                return fast
            return spark.read.option("header", True).csv(path).columns
        if fmt == "json":
            return spark.read.option("mode", "PERMISSIVE").json(path).columns
        return spark.read.parquet(path).columns
    except Exception as exc:  # truncated Parquet, unreadable gzip, ...
        first = str(exc).strip().splitlines()[0][:300]
        raise LandingContractError(f"{path}: unreadable {fmt} file: {first}") from exc


def explain_read_error(exc: BaseException) -> LandingContractError | None:
    """A Spark read failure that names a landing file (e.g. a truncated .gz found only when the
    whole file is read) -> LandingContractError naming that file; None for other errors."""
    text = str(exc)
    m = _READ_FAILURE.search(text)
    if not m:
        return None
    causes = re.findall(r"Caused by: ([^\n]+)", text)
    cause = causes[-1].strip()[:200] if causes else text.strip().splitlines()[0][:200]
    return LandingContractError(f"{m.group(1)}: unreadable file: {cause}")


def _check_columns(path: str, raw: Sequence[str], required: Sequence[str]) -> dict[str, str]:
    """Map canonical name -> raw column name; raise naming the file and the missing column."""
    by_lower = {}
    for col in raw:
        by_lower.setdefault(col.strip().lower(), col)
    missing = [c for c in required if c not in by_lower]
    if missing:
        found = ", ".join(c for c in raw if c != CORRUPT) or "none"
        raise LandingContractError(
            f"{path}: missing required column '{missing[0]}'"
            + (f" (and {missing[1:]})" if len(missing) > 1 else "")
            + f"; found columns: {found}"
        )
    return by_lower


def read_landing_table(
    spark: SparkSession,
    folder: str,
    required: Sequence[str],
    optional: Sequence[str],
    *,
    must_exist: bool = True,
) -> DataFrame | None:
    """All files below folder as one DataFrame of string columns, source_file and corrupt text."""
    fs = Fs(spark, folder)
    files = fs.list_files(folder)
    if not files:
        if must_exist:
            raise LandingContractError(
                f"{folder}: no data files found (the folder is missing or empty)"
            )
        return None
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
    for path in files:
        fmt = detect_format(path)
        raw = _raw_columns(spark, path, fmt, fs)
        _check_columns(path, raw, required)
        groups[(fmt, tuple(raw))].append(path)

    wanted = [*required, *optional]
    parts = []
    for (fmt, raw), paths in sorted(groups.items()):
        by_lower = _check_columns(paths[0], raw, required)
        if fmt == "csv":
            schema = StructType(
                [StructField(c, StringType()) for c in raw if c != CORRUPT]
                + [StructField(CORRUPT, StringType())]
            )
            df = (
                spark.read.schema(schema)
                .option("header", True)
                .option("mode", "PERMISSIVE")
                # Without this, columns pruned away (extra columns, unused ones) also prune the
                # token-count check, and a row with too many/few fields is not flagged corrupt.
                .option("columnPruning", False)
                .option("columnNameOfCorruptRecord", CORRUPT)
                .csv(paths)
            )
        elif fmt == "json":
            df = spark.read.option("mode", "PERMISSIVE").json(paths)
        else:
            df = spark.read.parquet(*paths)
        cols: list[Column] = []
        for name in wanted:
            if name in by_lower:
                cols.append(F.col(f"`{by_lower[name]}`").cast("string").alias(name))
            else:
                cols.append(F.lit(None).cast("string").alias(name))
        corrupt = F.col(CORRUPT) if CORRUPT in df.columns else F.lit(None).cast("string")
        cols.append(corrupt.alias(CORRUPT))
        cols.append(F.input_file_name().alias(C.SOURCE_FILE))
        parts.append(df.select(*cols))
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def _blank_to_null(col: Column) -> Column:
    # Any Unicode white space (tabs, no-break spaces), not only the ASCII spaces F.trim removes.
    trimmed = F.regexp_replace(col, r"(?U)^\s+|\s+$", "")
    return F.when(trimmed == "", None).otherwise(trimmed)


def parse_timestamp(raw: Column) -> Column:
    """Epoch seconds (or milliseconds, when too large for seconds) or ISO-8601 text -> timestamp."""
    is_number = raw.rlike(r"^-?[0-9]+(\.[0-9]+)?$")
    # Cast only what looks like a number: a failed cast costs an exception per row, and this
    # column is read several times below (4.6M ISO timestamps: the cast alone took 5.4 s).
    num = F.when(is_number, raw.try_cast("double"))
    epoch = F.when(F.abs(num) >= 1e11, num / 1000.0).otherwise(num)
    in_range = epoch.between(_MIN_EPOCH_S, _MAX_EPOCH_S)
    return F.when(is_number & in_range, F.timestamp_seconds(epoch)).when(
        ~is_number, F.try_to_timestamp(raw)
    )


def _not_a_number(raw: Column, num: Column) -> Column:
    """Text given but not a finite number ("abc", "NaN", "Infinity", "1e400")."""
    finite = ~F.isnan(num) & (F.abs(num) < float("inf"))
    return raw.isNotNull() & ~F.coalesce(finite, F.lit(False))


def _badly_encoded(names: Sequence[str]) -> Column:
    """True where any of the columns holds text that was not valid UTF-8."""
    return F.concat_ws("", *[F.col(n) for n in names]).contains(REPLACEMENT_CHAR)


def type_events(raw: DataFrame) -> DataFrame:
    """String landing rows -> typed bronze events; parse_error set where a row cannot be typed.

    Typed in two projections: the parse error reads the typed values instead of parsing the
    timestamp a second time inside its conditions (Spark does not share sub-expressions that
    are evaluated conditionally).
    """
    typed = raw.select(
        _blank_to_null(F.col(C.USER_ID)).alias(C.USER_ID),
        _blank_to_null(F.col(C.ITEM_ID)).alias(C.ITEM_ID),
        _blank_to_null(F.col(C.TS)).alias(_TS_TEXT),
        F.col(C.TS).alias(C.TS_RAW),
        F.lower(_blank_to_null(F.col(C.EVENT_TYPE))).alias(C.EVENT_TYPE),
        _blank_to_null(F.col(C.QUANTITY)).alias(_QTY_TEXT),
        _blank_to_null(F.col(C.VALUE)).alias(_VAL_TEXT),
        F.col(CORRUPT),
        F.col(C.SOURCE_FILE),
        _badly_encoded([*C.EVENTS_REQUIRED, *C.EVENTS_OPTIONAL]).alias(_BAD_ENCODING),
    )
    typed = typed.select(
        "*",
        parse_timestamp(F.col(_TS_TEXT)).alias(C.TS),
        F.col(_QTY_TEXT).try_cast("double").alias(C.QUANTITY),
        F.col(_VAL_TEXT).try_cast("double").alias(C.VALUE),
    )
    error = (
        F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed_row"))
        .when(F.col(_BAD_ENCODING), F.lit("invalid_encoding"))
        .when(F.col(_TS_TEXT).isNotNull() & F.col(C.TS).isNull(), F.lit("invalid_timestamp"))
        .when(_not_a_number(F.col(_QTY_TEXT), F.col(C.QUANTITY)), F.lit("invalid_quantity"))
        .when(_not_a_number(F.col(_VAL_TEXT), F.col(C.VALUE)), F.lit("invalid_value"))
    )
    return typed.select(
        C.USER_ID,
        C.ITEM_ID,
        C.TS,
        C.TS_RAW,
        F.coalesce(F.col(C.EVENT_TYPE), F.lit(C.DEFAULT_EVENT_TYPE)).alias(C.EVENT_TYPE),
        C.QUANTITY,
        C.VALUE,
        error.alias(PARSE_ERROR),
        CORRUPT,
        C.SOURCE_FILE,
    )


def type_items(raw: DataFrame) -> DataFrame:
    """String landing rows -> typed bronze items."""
    for name in (C.AVAILABLE, C.STOCK):  # newer optional columns: frames read without them type
        if name not in raw.columns:
            raw = raw.withColumn(name, F.lit(None).cast("string"))
    price_raw = _blank_to_null(F.col(C.PRICE))
    price = price_raw.try_cast("double")
    first_seen = F.to_date(parse_timestamp(_blank_to_null(F.col(C.FIRST_SEEN))))
    flag = F.lower(_blank_to_null(F.col(C.NON_PRODUCT)))
    available_raw = F.lower(_blank_to_null(F.col(C.AVAILABLE)))
    available = F.when(available_raw.isin(*_TRUE), True).when(available_raw.isin(*_FALSE), False)
    stock_raw = _blank_to_null(F.col(C.STOCK))
    stock = stock_raw.try_cast("double")
    error = (
        F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed_row"))
        .when(_badly_encoded([*C.ITEMS_REQUIRED, *C.ITEMS_OPTIONAL]), F.lit("invalid_encoding"))
        .when(_not_a_number(price_raw, price), F.lit("invalid_price"))
        .when(
            (available_raw.isNotNull() & available.isNull()) | _not_a_number(stock_raw, stock),
            F.lit("invalid_availability"),
        )
    )
    return raw.select(
        _blank_to_null(F.col(C.ITEM_ID)).alias(C.ITEM_ID),
        F.coalesce(F.trim(F.col(C.TITLE)), F.lit("")).alias(C.TITLE),
        F.trim(F.col(C.DESCRIPTION)).alias(C.DESCRIPTION),
        _blank_to_null(F.col(C.CATEGORY)).alias(C.CATEGORY),
        _blank_to_null(F.col(C.BRAND)).alias(C.BRAND),
        price.alias(C.PRICE),
        first_seen.alias(C.FIRST_SEEN),
        F.coalesce(flag.isin("true", "1", "yes"), F.lit(False)).alias(C.NON_PRODUCT),
        available.alias(C.AVAILABLE),
        stock.alias(C.STOCK),
        error.alias(PARSE_ERROR),
        F.col(CORRUPT),
        F.col(C.SOURCE_FILE),
    )


def read_events(spark: SparkSession, landing: str) -> DataFrame:
    raw = read_landing_table(spark, f"{landing}/events", C.EVENTS_REQUIRED, C.EVENTS_OPTIONAL)
    assert raw is not None
    return type_events(raw)


def read_items(spark: SparkSession, landing: str) -> DataFrame:
    raw = read_landing_table(spark, f"{landing}/items", C.ITEMS_REQUIRED, C.ITEMS_OPTIONAL)
    assert raw is not None
    return type_items(raw)


def read_users(spark: SparkSession, landing: str) -> DataFrame | None:
    raw = read_landing_table(spark, f"{landing}/users", C.USERS_REQUIRED, (), must_exist=False)
    if raw is None:
        return None
    return raw.select(
        _blank_to_null(F.col(C.USER_ID)).alias(C.USER_ID), F.col(CORRUPT), F.col(C.SOURCE_FILE)
    )
