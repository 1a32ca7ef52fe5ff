# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench experiments clean

# torch is pinned to the CPU wheel first; the package's own `torch>=2.1` is then already satisfied,
# so no step can resolve a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,web]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/memopainter demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

# Every table and plot under docs/results, data sets included (several hours on 2 cores: about fifty models).
experiments: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH bash docs/results/reproduce.sh

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
