"""SQL for cleaning and joins lives in sql/ as files; this renders them with run parameters."""

from __future__ import annotations

import os
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from pyspark.sql import DataFrame, SparkSession


def sql_dir() -> Path | Traversable:
    """sql/ as installed package data (`longtail.sql`), so an installed copy on a Spark driver
    needs no repository beside it; LONGTAIL_SQL_DIR overrides it (to try edited SQL)."""
    env = os.environ.get("LONGTAIL_SQL_DIR")
    if env:
        return Path(env)
    return files("longtail.sql")


def render(name: str, **params: object) -> str:
    """Substitute $params; a missing parameter is an error, not an empty string."""
    text = (sql_dir() / name).read_text(encoding="utf-8")
    return Template(text).substitute({k: str(v) for k, v in params.items()})


def quoted_list(values: list[str] | tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def run_sql(
    spark: SparkSession, name: str, views: dict[str, DataFrame], **params: object
) -> DataFrame:
    """Run sql/<name> with the given DataFrames registered under their view names."""
    for view, df in views.items():
        df.createOrReplaceTempView(view)
    return spark.sql(render(name, **params))
