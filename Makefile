# Longtail: every target sets itself up (virtualenv, packages, sample data, Airflow DB) when needed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.longtail-installed

SAMPLE := $(CURDIR)/data/landing/sample
LANDING ?= $(SAMPLE)
WAREHOUSE ?= $(CURDIR)/data/warehouse
TOP_N ?= 20
DS ?=
DATA_DIR ?= $(abspath $(CURDIR)/../shared/datasets)
DATASET ?=
BENCH_NAME ?=
BENCH_ARGS ?=
SCALE_FACTORS ?=
SCALE_KEEP ?=
PYTEST_ARGS ?=
KEEP_NIGHTS ?= 30
KEEP_PUBLISHED ?=

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := False
export AIRFLOW__CORE__PARALLELISM := 2
export AIRFLOW__API__HOST := 127.0.0.1
export AIRFLOW_CONN_LONGTAIL_SPARK ?= {"conn_type": "spark", "host": "local[2]"}
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export OPENBLAS_NUM_THREADS := 1
export SPARK_LOCAL_IP := 127.0.0.1
export PYSPARK_PYTHON := $(BIN)/python
export PYSPARK_DRIVER_PYTHON := $(BIN)/python
export PATH := $(BIN):$(PATH)

.PHONY: help venv sample airflow-db run test test-fast lint format bench bench-all bench-scale bench-seeds clean-data env bench-table bench-backfill \
  retention data-docs up down status

help:
	@echo "make run    [DS=YYYY-MM-DD] [LANDING=dir] [WAREHOUSE=dir] [TOP_N=20]  nightly DAG on the sample"
	@echo "make test   [PYTEST_ARGS=...] [TEST_WORKERS=2]                         the test suite"
	@echo "make bench  DATASET=<name> | LANDING=<dir> [BENCH_NAME=name] [BENCH_ARGS=...]  benchmark"
	@echo "make bench-seeds DATASET=<name> [SEEDS='42 43 44 45 46']  spread of published over learned-stage seeds"
	@echo "make bench-scale [SCALE_FACTORS='1 4 16'] [SCALE_KEEP=1]  nightly DAG on generated shops of growing size"
	@echo "make bench-backfill [NIGHTS=7]  the sample's night, and a backfill of its last nights through a scheduler"
	@echo "            BENCH_ARGS e.g. --listing-dates auto|landing|first_event --protocol auto|temporal|user_holdout"
	@echo "make retention [DS=YYYY-MM-DD] [KEEP_NIGHTS=30] [KEEP_PUBLISHED=n]        expire old nights now"
	@echo "make data-docs [WAREHOUSE=dir]                                          rebuild the quality site"
	@echo "make up | status | down   local deployment on 127.0.0.1: PostgreSQL, Airflow (UI :8080), Spark"
	@echo "            (ports: LONGTAIL_PG_PORT, LONGTAIL_AIRFLOW_PORT, LONGTAIL_SPARK_*_PORT; runtime in .runtime/)"
	@echo "make lint | format | sample | venv"

venv: $(STAMP)
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=25"
	$(BIN)/pip install --quiet --no-compile -r requirements.lock
	@# pip byte-compiles its ~19k files on one core (60 s of a 97 s install); on every core
	@# it is 35 s. Files that do not compile (templates, fixtures) are skipped, as pip skips them.
	$(BIN)/python -c "import compileall, sysconfig; \
	  compileall.compile_dir(sysconfig.get_paths()['purelib'], quiet=2, workers=0)"
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m longtail.jvm_archive  # the Spark driver's class archive (src/longtail/jvm_archive.py)
	touch $(STAMP)

sample: $(SAMPLE)/_SAMPLE_OK
$(SAMPLE)/_SAMPLE_OK: | $(STAMP)
	$(BIN)/python -m longtail.sample --out $(SAMPLE)

airflow-db: $(AIRFLOW_HOME)/.migrated
$(AIRFLOW_HOME)/.migrated: | $(STAMP)
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/migrate.log; exit 1)
	touch $@

run: $(STAMP) airflow-db
	@if [ "$(LANDING)" = "$(SAMPLE)" ]; then $(MAKE) --no-print-directory sample; fi
	@set -euo pipefail; \
	ds="$(DS)"; if [ -z "$$ds" ]; then ds=$$($(BIN)/python -m longtail.lastday "$(LANDING)"); fi; \
	echo "longtail: run date $$ds, landing $(LANDING), warehouse $(WAREHOUSE), top_n $(TOP_N)"; \
	$(BIN)/python -m longtail.airflow_run --ds "$$ds" --landing "$(abspath $(LANDING))" \
	  --warehouse "$(abspath $(WAREHOUSE))" --top-n $(TOP_N) \
	  $(if $(OVERRIDES),--overrides '$(OVERRIDES)')

# The tests start hundreds of short Spark JVMs on tiny data: without the optimising JIT and with
# the serial collector each takes about half the CPU (a test setting; production keeps defaults).
test test-fast: export SPARK_SUBMIT_OPTS ?= -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
# TEST_WORKERS: pytest processes (xdist); a test file is one unit of work (tests/conftest.py).
# TEST_WORKERS=0 runs every test in one process.
TEST_WORKERS ?= 2
PARALLEL = -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder
test: $(STAMP) airflow-db
	$(BIN)/python -m pytest $(PARALLEL) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest $(PARALLEL) -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench.replay $(if $(DATASET),--dataset "$(DATASET)" --data-dir "$(DATA_DIR)",--landing "$(abspath $(LANDING))") $(if $(BENCH_NAME),--name "$(BENCH_NAME)") $(BENCH_ARGS)

bench-seeds: $(STAMP)
	$(BIN)/python -m bench.seeds --dataset "$(DATASET)" --data-dir "$(DATA_DIR)" $(if $(SEEDS),--seeds $(SEEDS))

bench-table: $(STAMP)
	$(BIN)/python -m bench.table reports/bench

# SCALE_FACTORS: shop sizes in units of 10k users / 5k items / ~300k events (default 1 4 16).
# SCALE_KEEP=1: keep the report's other factors (same machine), so one factor can be re-measured.
bench-scale: $(STAMP) airflow-db
	$(BIN)/python -m bench.scale $(if $(SCALE_FACTORS),--factors $(SCALE_FACTORS)) \
	  $(if $(SCALE_KEEP),--keep)

# the built-in sample's night, and a backfill of its last NIGHTS (7) days through a local scheduler
bench-backfill: $(STAMP) airflow-db sample
	$(BIN)/python -m bench.backfill $(if $(NIGHTS),--nights $(NIGHTS)) $(BENCH_ARGS)

bench-all: $(STAMP)
	for d in online-retail amazon-office-2014 ml-latest-small amazon-beauty-2014; do \
	  $(MAKE) --no-print-directory bench DATASET=$$d || exit 1; done

# DS defaults to the newest published night (recommendations/_latest.json).
retention: $(STAMP)
	@set -euo pipefail; ds="$(DS)"; if [ -z "$$ds" ]; then \
	  ds=$$($(BIN)/python -c "import json, sys; print(json.load(open(sys.argv[1]))['ds'])" \
	    "$(abspath $(WAREHOUSE))/recommendations/_latest.json"); fi; \
	$(BIN)/python jobs/run_stage.py retention --ds "$$ds" --warehouse "$(abspath $(WAREHOUSE))" \
	  --keep-nights $(KEEP_NIGHTS) $(if $(KEEP_PUBLISHED),--keep-published-nights $(KEEP_PUBLISHED))

data-docs: $(STAMP)
	$(BIN)/python -c "import sys; from longtail.datadocs import build_site; print(build_site(sys.argv[1]))" \
	  "$(abspath $(WAREHOUSE))"

clean-data:
	rm -rf data/warehouse data/bench

# Local deployment (src/longtail/deploy): PostgreSQL + Airflow 3 as separate processes + Spark
# standalone, all on 127.0.0.1, state under .runtime/deploy, secrets under ~/.config/longtail/.
up: $(STAMP)
	@if [ -z "$${LONGTAIL_LANDING:-}" ] && [ ! -f $(SAMPLE)/_SAMPLE_OK ]; then \
	  $(MAKE) --no-print-directory sample; fi
	$(BIN)/python -m longtail.deploy up

# down and status never reinstall the venv while services run from it (only create it if absent)
down status: $(if $(wildcard $(STAMP)),,$(STAMP))
	$(BIN)/python -m longtail.deploy $@

env:  ## print the environment `make run` uses, for `source <(make -s env)`
	@for v in AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER AIRFLOW__CORE__LOAD_EXAMPLES \
	  AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION AIRFLOW__CORE__PARALLELISM AIRFLOW__API__HOST \
	  GX_ANALYTICS_ENABLED HF_HUB_OFFLINE TRANSFORMERS_OFFLINE OPENBLAS_NUM_THREADS SPARK_LOCAL_IP \
	  PYSPARK_PYTHON PYSPARK_DRIVER_PYTHON PATH; do printf "export %s='%s'\n" $$v "$${!v}"; done
	@printf "export AIRFLOW_CONN_LONGTAIL_SPARK='%s'\n" '$(AIRFLOW_CONN_LONGTAIL_SPARK)'
