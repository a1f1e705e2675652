# yieldkit: two-command set-up.
#   make demo   create .venv, install yieldkit and its dependencies, analyse data_samples/, write reports/
#   make test   the same set-up, then lint and the whole test suite
#   make docs   the same set-up, then the documentation (docs/_build/html), warnings as errors,
#               running every example of the gallery

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLES := data_samples

.PHONY: setup demo test lint docs data-samples bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint,dask,docs]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/yieldkit summary $(SAMPLES)/dies.parquet --by lot
	$(BIN)/yieldkit report $(SAMPLES)/dies.parquet --defects $(SAMPLES)/defects.parquet \
		--wafers $(SAMPLES)/wafers.csv --layout $(SAMPLES)/layout.json --bin-names $(SAMPLES)/bins.json \
		--title "yieldkit demo: simulated fab" -o reports/demo.html
	$(BIN)/yieldkit --quiet map $(SAMPLES)/dies.parquet --all --layout $(SAMPLES)/layout.json \
		--bin-names $(SAMPLES)/bins.json -o reports/maps/
	@echo "report written to reports/demo.html; one map per wafer and stacked.png in reports/maps/"

lint: setup
	$(BIN)/ruff check yieldkit tests benchmarks $(wildcard scripts)
	$(BIN)/mypy

test: setup lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

docs: setup
	MPLBACKEND=Agg $(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

# Regenerate the sample data used by the demo, the README and the docs.
data-samples: setup
	$(BIN)/yieldkit simulate $(SAMPLES) --seed 2026 --lots 4 --wafers-per-lot 12 \
		--signature-rate 0.25 --coverage 0.99 --retest-rate 0.01 --excursion etch:ETCH02:B:3

bench: setup
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis reports/*.html \
		docs/_build docs/auto_examples docs/generated docs/sg_execution_times.rst
