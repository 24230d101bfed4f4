"""SQL for cleaning and joins lives in sql/ as files; this renders them with run parameters."""

from __future__ import annotations

import os
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Formatter, Template

from pyspark.sql import DataFrame, SparkSession


def sql_dir() -> Path | Traversable:
    """sql/ as installed package data (`longtail.sql`), so an installed copy on a Spark driver
    needs no repository beside it; LONGTAIL_SQL_DIR overrides it (to try edited SQL)."""
    env = os.environ.get("LONGTAIL_SQL_DIR")
    if env:
        return Path(env)
    return files("longtail.sql")


def render(name: str, **params: object) -> str:
    """Substitute $params; a missing parameter is an error, not an empty string.

    Braces in a value are doubled: after this, `{name}` in the text only ever means an input
    DataFrame that `run_sql` binds.
    """
    text = (sql_dir() / name).read_text(encoding="utf-8")
    values = {k: str(v).replace("{", "{{").replace("}", "}}") for k, v in params.items()}
    return Template(text).substitute(values)


def quoted_list(values: list[str] | tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def run_sql(
    spark: SparkSession, name: str, inputs: dict[str, DataFrame], **params: object
) -> DataFrame:
    """Run sql/<name> with its `{input}` placeholders bound to the given DataFrames.

    The frames are passed as DataFrame parameters of `spark.sql`, which binds each under a name
    unique to this call and drops it afterwards. Registering fixed view names instead
    (`createOrReplaceTempView("silver_events")`) let two nights sharing a session replace each
    other's view between registration and analysis, so one night was computed from the other's
    events.
    """
    text = render(name, **params)
    wanted = {field for _, field, _, _ in Formatter().parse(text) if field is not None}
    if wanted != set(inputs):
        missing, unused = sorted(wanted - set(inputs)), sorted(set(inputs) - wanted)
        raise KeyError(f"sql/{name}: inputs missing {missing}, not used {unused}")
    if not inputs:  # spark.sql formats (and so un-doubles braces) only when given parameters
        return spark.sql(Formatter().vformat(text, (), {}))
    return spark.sql(text, **inputs)
