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
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,lstm]'
	touch $@

install: $(VENV)/.installed

## demo: install, ingest the bundled NSE sample, backtest an SMA crossover on it, reproduce the
## run, build its basic feature set, train a model on it and reproduce the model
# The sample is real NSE data with real flaws: three days repeated in each file (dropped and
# recorded) and gaps the validator warns about. Charge rates start in 2010, hence --from.
# The run is saved beside the store ($(DEMO_ROOT)/runs); running it again to learn its id finds
# it unchanged (same inputs, same id, same bytes), and reproduce re-checks it from the manifest.
DEMO_RUN := --dataset nse-sample --strategy sma_cross -p fast=10 -p slow=30 -p qty=50 \
	--from 2010-01-01
# The model: a small gradient-boosted classifier of the 5-session direction, tested out of
# sample on 2017-2019 (a few seconds); training it again creates nothing new.
DEMO_MODEL := demo-up5 --features nse-sample-basic --label direction:5 --model hgb \
	-p max_iter=50 --train-from 2010-01-01 --train-to 2016-12-31 --test-to 2019-12-31 --seed 7
demo: install
	$(BIN)/quantcli --root $(DEMO_ROOT) data ingest nse-sample --source nifty50 \
	  --drop-duplicates --allow-warnings datasets/_raw/nse-daily-sample/*.csv
	$(BIN)/quantcli --root $(DEMO_ROOT) backtest $(DEMO_RUN)
	$(BIN)/quantcli --root $(DEMO_ROOT) backtest reproduce \
	  "$$($(BIN)/quantcli --root $(DEMO_ROOT) --json backtest $(DEMO_RUN) | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')"
	$(BIN)/quantcli --root $(DEMO_ROOT) features build nse-sample-basic --dataset nse-sample \
	  --spec basic
	$(BIN)/quantcli --root $(DEMO_ROOT) model train $(DEMO_MODEL)
	$(BIN)/quantcli --root $(DEMO_ROOT) model reproduce demo-up5

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
