# Esper: `make demo` and `make test` set everything up and run.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
PYTEST_ARGS ?=

.PHONY: setup test test-all demo demo-services proto proto-check lint bench policy wheel clean

setup:
	@bash tools/setup.sh

test: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	@bash tools/demo.sh

demo-services: setup
	@bash tools/demo_services.sh

proto: setup
	$(BIN)/buf generate

proto-check: setup
	$(BIN)/buf format --diff --exit-code
	$(BIN)/buf lint
	bash tools/proto_breaking.sh
	$(MAKE) --no-print-directory proto
	$(PY) tools/check_rpc_access.py
	@changed="$$(git status --porcelain -- generated/)"; \
	if [ -n "$$changed" ]; then \
	  echo "proto-check: generated/ is stale; run 'make proto' and commit:"; echo "$$changed"; exit 1; \
	fi
	@echo "proto-check: contracts lint-clean, non-breaking, generated code fresh"

lint: setup
	$(BIN)/ruff check server clients tests bench tools
	$(BIN)/ruff format --check server clients tests bench tools
	$(BIN)/mypy server clients
	@# Unused code in server/ and clients/: unused anywhere, tests and benchmarks included.
	@dead="$$($(PY) -m vulture server clients tests bench tools generated/esper/leyline/v1/services.py \
	  --min-confidence 60 | grep -E '^(server|clients)/' || true)"; \
	if [ -n "$$dead" ]; then \
	  echo "lint: unused code (delete it, or name its caller in tools/vulture_whitelist.py):"; echo "$$dead"; exit 1; \
	fi

bench: setup
	@# gromo (the growth peer) is bench-only; torch stays pinned on the same line so pip never upgrades it.
	$(PY) -m pip install --quiet -r bench/requirements.txt torch==2.13.0
	$(PY) bench/leyline_bench.py
	$(PY) bench/overhead.py
	$(PY) bench/assets_bench.py
	$(PY) bench/compile_bench.py
	$(PY) bench/mesh_bench.py
	$(PY) bench/tracing_bench.py
	$(PY) bench/tls_bench.py
	$(PY) bench/cold_cache.py
	$(PY) bench/ddp.py
	@# Hours on two cores; resumable: it skips the cells already in runs/efficacy/results.json.
	$(PY) bench/efficacy.py
	@# The transformer on the text corpus, 3 seeds; resumable like efficacy (runs/lm/results.json).
	$(PY) bench/lm.py
	$(PY) bench/policy.py

# Reproduce the shipped learned policy gnn-v1 (weights, card, docs/policy-training.png) on 2 cores.
policy: setup
	OMP_NUM_THREADS=1 $(PY) tools/train_policy.py --workers 2

wheel: setup
	$(PY) -m pip wheel --no-deps --no-build-isolation -w dist .

clean:
	rm -rf dist build .pytest_cache .mypy_cache .ruff_cache
