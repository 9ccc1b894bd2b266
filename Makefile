# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv with the pinned constraints on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_ROOT ?= datasets

.PHONY: install demo test lint typecheck unit bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## demo: install, ingest the bundled NSE sample and run the main job on it
demo: install
	$(BIN)/quantcli --root $(DEMO_ROOT) data ingest nse-sample --source nifty50 datasets/_raw/nse-daily-sample/*.csv
	$(BIN)/quantcli --root $(DEMO_ROOT) data query --dataset nse-sample \
	  "SELECT symbol, count(*) AS bars, min(ts)::DATE AS first, max(ts)::DATE AS last, round(avg(close), 2) AS avg_close FROM bars GROUP BY symbol ORDER BY symbol"

## test: install dev tools, then ruff, mypy --strict and pytest with coverage
test: install lint typecheck unit

lint:
	$(BIN)/ruff check quantcli tests benchmarks
	$(BIN)/ruff format --check quantcli tests benchmarks

typecheck:
	$(BIN)/mypy --strict quantcli

unit:
	$(BIN)/pytest --cov=quantcli --cov-report=term --cov-fail-under=85

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
