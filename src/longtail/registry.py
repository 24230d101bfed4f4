"""Every stage of the nightly pipeline, declared once (stdlib only: the DAG file imports it at
parse time).

A `Stage` names its module (`run(spark, cfg) -> record` and `main(argv)`), its config class in
`longtail.config`, the tables it reads and writes (names from `longtail.tables`), the run records
of other stages it reads, the published table whose Airflow asset it updates, and the gates
(functions of `longtail.gates`) it runs on its output before publishing it. Everything that
walks the stages is built from `STAGES`: the DAG (`dags/longtail_nightly.py`: one task per stage,
its dependencies, outlets and teardown), the argument resolver (`dagargs`), the JSON Schema of the
overrides Param (`overrides_schema`), the assets and the data-docs site (`PUBLISHED_BY`), the
spark-submit entry point (`jobs/run_stage.py <stage>`), the benchmark's runner
(`bench/replay.py`), the reliability kit and the tests.

The DAG's dependencies are derived, never listed: a stage runs after every stage that writes a
table it reads, expires, or whose run record it reads (`needs`), reduced to the direct edges
(`upstream`). Retention is the one stage that `expires` tables: it deletes old nights of every
table, so it runs after every stage that writes one, the publishing stages included.

Adding a stage: one entry here, one config class in `longtail.config`, one module in
`longtail.stages` and its tests. `STAGES` is in the order the stages run in-process (the
reliability kit, the benchmark): every stage after the stages it needs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from longtail import tables as T

if TYPE_CHECKING:
    from longtail.config import StageConfig

# The spark-submit entry point of every stage, relative to the repository root.
JOB = "jobs/run_stage.py"
# Config fields the run's params set for every stage that has them (one night, one warehouse,
# one landing): the per-stage overrides may not set them.
RUN_FIELDS = ("ds", "warehouse", "landing")


@dataclass(frozen=True)
class Stage:
    name: str  # also the DAG task id and the run record's name (`_runs/ds=<ds>/<name>.json`)
    config: str  # the config class's name in longtail.config
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    records: tuple[str, ...] = ()  # stages whose run records it reads
    publishes: str | None = None  # the published table (and Airflow asset) it updates
    expires: tuple[str, ...] = ()  # tables whose old nights it deletes
    gates: tuple[str, ...] = ()  # the longtail.gates functions it runs on what it writes

    @property
    def module(self) -> str:
        return f"longtail.stages.{self.name}"

    @property
    def config_class(self) -> type[StageConfig]:
        """The config class, imported on first use (longtail.config is light, but not stdlib)."""
        return getattr(importlib.import_module("longtail.config"), self.config)

    def load(self) -> ModuleType:
        """The stage's module: its `run` and `main` (imports Spark)."""
        return importlib.import_module(self.module)


STAGES: tuple[Stage, ...] = (
    Stage("ingest", "IngestConfig", writes=T.BRONZE, gates=("gate_bronze",)),
    Stage(
        "clean",
        "CleanConfig",
        reads=(T.BRONZE_EVENTS, T.BRONZE_ITEMS),
        writes=T.SILVER,
        gates=("gate_catalogue", "gate_events", "gate_interactions"),
    ),
    Stage(
        "content",
        "ContentConfig",
        reads=(T.CATALOGUE,),
        writes=(T.ITEM_EMBEDDINGS, T.EMBEDDING_CACHE),
        gates=("gate_factors",),
    ),
    Stage(
        "train_als",
        "AlsConfig",
        reads=(T.INTERACTIONS,),
        writes=T.ALS_FACTORS,
        gates=("gate_factors",),
    ),
    Stage(
        "item_space",
        "ItemSpaceConfig",
        reads=(T.CATALOGUE, T.INTERACTIONS),
        writes=(T.ITEM_STATS, T.ITEM_COOCCURRENCE),
        gates=("gate_item_stats", "gate_cooccurrence"),
    ),
    Stage(
        "train_ranker",
        "RankerConfig",
        reads=(T.SILVER_EVENTS, T.CATALOGUE, T.ITEM_EMBEDDINGS),
        writes=(T.RANKER,),
        # the night's chosen ALS settings, item_space settings and n-gram channel
        records=("train_als", "item_space", "content"),
    ),
    Stage(
        "score",
        "ScoreConfig",
        reads=(T.SILVER_EVENTS, T.INTERACTIONS, T.RANKER, *T.ALS_FACTORS, *T.ITEM_SPACE_INPUTS),
        # stages the recommendations for publish, which its record names (STAGED_ATTEMPT)
        records=("train_als", "ingest", "content"),
    ),
    Stage(
        "publish",
        "PublishConfig",
        reads=(T.CATALOGUE, T.INTERACTIONS),
        writes=(T.RECOMMENDATIONS,),
        records=("score", "ingest"),
        publishes=T.RECOMMENDATIONS,
        gates=("gate_recommendations",),
    ),
    Stage(
        "similar_items",
        "SimilarItemsConfig",
        reads=T.ITEM_SPACE_INPUTS,
        writes=(T.SIMILAR_ITEMS,),
        records=("ingest", "content"),
        publishes=T.SIMILAR_ITEMS,
        gates=("gate_similar",),
    ),
    Stage(
        "item_audiences",
        "ItemAudiencesConfig",
        reads=(T.INTERACTIONS, *T.ITEM_SPACE_INPUTS),
        writes=(T.ITEM_AUDIENCES,),
        records=("ingest", "content"),
        publishes=T.ITEM_AUDIENCES,
        gates=("gate_item_audiences",),
    ),
    Stage(
        "quality",
        "QualityConfig",
        # the newest earlier published list, its night's history and catalogue
        reads=(T.SILVER_EVENTS, T.RECOMMENDATIONS, T.INTERACTIONS, T.CATALOGUE),
        writes=(T.QUALITY_METRICS,),
        publishes=T.QUALITY_METRICS,
    ),
    Stage(
        "retention",
        "RetentionConfig",
        expires=(*T.INTERMEDIATE, *T.PUBLISHED, T.EMBEDDING_CACHE),
    ),
)
BY_NAME = {s.name: s for s in STAGES}
NAMES = tuple(BY_NAME)
# stage (= DAG task id) -> the published table it writes (and whose Airflow asset it updates)
PUBLISHED_BY = {s.name: s.publishes for s in STAGES if s.publishes}


class RegistryError(ValueError):
    """The stage declarations contradict each other (caught by the tests and at import)."""


def stage(name: str) -> Stage:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no stage {name!r}; stages: {', '.join(NAMES)}") from None


def writers() -> dict[str, str]:
    """table -> the one stage that writes it."""
    out: dict[str, str] = {}
    for s in STAGES:
        for table in s.writes:
            if table in out:
                raise RegistryError(f"{table} is written by {out[table]} and {s.name}")
            out[table] = s.name
    return out


def writer_of(table: str) -> str:
    return writers()[table]


@cache
def needs(name: str) -> tuple[str, ...]:
    """Every stage `name` must run after: the writers of what it reads or expires, and the
    stages whose run records it reads (registry order)."""
    s, by_table = stage(name), writers()
    found = {by_table[t] for t in (*s.reads, *s.expires) if t in by_table} | set(s.records)
    found.discard(name)
    return tuple(n for n in NAMES if n in found)


@cache
def ancestors(name: str) -> frozenset[str]:
    out: set[str] = set()
    for n in needs(name):
        out |= {n, *ancestors(n)}
    return frozenset(out)


@cache
def upstream(name: str) -> tuple[str, ...]:
    """The DAG's direct upstream tasks of a stage: `needs` less those another need implies."""
    direct = needs(name)
    return tuple(n for n in direct if not any(n in ancestors(m) for m in direct if m != n))


def downstream(name: str) -> tuple[str, ...]:
    return tuple(n for n in NAMES if name in upstream(n))


def leaves() -> tuple[str, ...]:
    """The stages nothing runs after (the DAG's data_docs teardown follows them)."""
    return tuple(n for n in NAMES if not downstream(n))


def lineage(*names: str) -> tuple[str, ...]:
    """The given stages and everything they need, in registry (run) order."""
    keep = set(names).union(*(ancestors(n) for n in names))
    return tuple(n for n in NAMES if n in keep)


def check() -> None:
    """Raise RegistryError where the declarations contradict each other."""
    by_table = writers()
    for s in STAGES:
        if s.publishes is not None and s.publishes not in s.writes:
            raise RegistryError(f"{s.name} publishes {s.publishes} but does not write it")
        unknown = [t for t in s.reads if t not in by_table] + [
            r for r in s.records if r not in BY_NAME
        ]
        if unknown:
            raise RegistryError(f"{s.name} reads what no stage writes: {unknown}")
        if any(not g.startswith("gate_") for g in s.gates) or (s.gates and not s.writes):
            raise RegistryError(f"{s.name}: gates {s.gates} are gate_* functions on its writes")
        late = [n for n in needs(s.name) if NAMES.index(n) > NAMES.index(s.name)]
        if late or s.name in ancestors(s.name):
            raise RegistryError(f"{s.name} is listed before {late or 'itself'}, which it needs")


def overrides_schema() -> dict[str, Any]:
    """JSON Schema of the DAG's `overrides` param: per stage an object of its config's typed
    fields (less RUN_FIELDS), nothing else; unknown stages refused. Imports longtail.config."""
    return {
        "type": "object",
        "properties": {s.name: s.config_class.json_schema(exclude=RUN_FIELDS) for s in STAGES},
        "additionalProperties": False,
    }


def build_configs(
    ds: str | Any,
    warehouse: str,
    *,
    landing: str | None = None,
    top_n: int | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    names: tuple[str, ...] = NAMES,
) -> dict[str, StageConfig]:
    """Each named stage's validated config: the run's ds and warehouse, `landing` and `top_n`
    where the stage's config has such a field, then the stage's overrides (ConfigError on a bad
    value or an unknown field)."""
    from longtail.config import ConfigError

    run = {"landing": landing, "top_n": top_n}
    out = {}
    for name in names:
        cls = stage(name).config_class
        fields = cls.field_names()
        given = {k: v for k, v in run.items() if v is not None and k in fields}
        values = {"ds": ds, "warehouse": warehouse, **given, **(overrides or {}).get(name, {})}
        try:
            out[name] = cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{name}: {exc}") from exc
    return out


check()
