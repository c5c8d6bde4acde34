# Two commands for a newcomer: `make demo` and `make test`. Needs only python3 (3.11+), git and make.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV_PY := .venv/bin/python
export DAGSTER_HOME := $(CURDIR)/dagster_home
# dagster.yaml's step-progress handler uses Dagster's (beta) yaml logging: say it once in the README, not every run
export PYTHONWARNINGS := ignore:Handling yaml-defined logging

.PHONY: install demo test ui mlflow sessions summary clean-state soak

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV)
	$(UV) sync --frozen --quiet

## Run daily_trading_job for the latest completed NYSE session on the embedded default: one line
## per step (every event is in the run's log in the UI), then the account in a few tables.
demo: install
	@SESSION=$${SESSION:-$$($(VENV_PY) -m trading_pipeline.cli latest-session)} || exit 1; \
	echo "==> daily_trading_job for session $$SESSION (DAGSTER_HOME=$(DAGSTER_HOME))"; \
	.venv/bin/dg launch --job daily_trading_job --partition $$SESSION && \
	$(VENV_PY) -m trading_pipeline.cli summary --session $$SESSION

## Run the whole test suite, on every core (pytest-xdist; idle workers take waiting tests).
test: install
	$(VENV_PY) -m pytest -n auto --dist worksteal

## The Dagster web UI on http://127.0.0.1:3000 (and its daemon). Ctrl-C or a SIGTERM to make stops
## all of it: trading_pipeline.serve runs it in a process group of its own and stops that group.
ui: install
	$(VENV_PY) -m trading_pipeline.serve -- .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## The MLflow UI on http://127.0.0.1:5000 for this home's models and drift reports, laptop-sized: one
## worker, and without MLflow's job runner (seven more processes this project does not use).
mlflow: install
	@URI=$$($(VENV_PY) -c "from trading_pipeline.settings import TradingSettings as S; print(S().resolved_mlflow_uri)"); \
	echo "MLflow UI on http://127.0.0.1:5000 for $$URI (Ctrl-C stops it)"; \
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false exec $(VENV_PY) -m trading_pipeline.serve -- .venv/bin/mlflow ui --backend-store-uri "$$URI" -h 127.0.0.1 -p 5000 -w 1

## The daily job over a range of sessions: make sessions FROM=2024-01-02 TO=2024-02-13
sessions: install
	$(VENV_PY) -m trading_pipeline.cli run-sessions --start $(FROM) --end $(TO)

summary: install
	$(VENV_PY) -m trading_pipeline.cli summary

## Fault soak of every venue's adapter against its fake: make soak [FAULTS=1000] [SEED=1]
soak: install
	$(VENV_PY) -m trading_pipeline_tests.benchmarks.soak --venues ibkr,alpaca,robinhood \
		--faults $${FAULTS:-1000} --seed $${SEED:-1}

## Benchmarks at the sizes users run, in one table compared with the last run (bench_results/):
## make bench [SIZE=smoke|medium|full|all]. smoke takes about a minute; all takes an hour or more.
.PHONY: bench
bench: install
	$(VENV_PY) -m trading_pipeline_tests.benchmarks.runner --size $${SIZE:-all}

## A paper account (5 positions, $$50,000) adopted and traded against a venue's fakes on 127.0.0.1,
## with a split on day 12, as one table: make paper-scenario [VENUE=alpaca|ibkr] [SESSIONS=30]
.PHONY: paper-scenario
paper-scenario: install
	$(VENV_PY) -m trading_pipeline_tests.scenarios.paper_account --venue $${VENUE:-alpaca} --sessions $${SESSIONS:-30}

## Forget every run, the warehouse and the models (keeps dagster_home/dagster.yaml).
clean-state:
	find dagster_home -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +
