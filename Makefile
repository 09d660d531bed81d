# The two commands of the README: `make demo` and `make test`.
# .venv and pip's cache are reused, so only the first run downloads torch.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# The review model ships inside an installed package; nothing is fetched at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

# The test suite's own Neo4j: another port and state folder, so tests never touch the demo graph.
TEST_ENV := RISKGRAPH_STATE_DIR=$${RISKGRAPH_TEST_STATE_DIR:-$$HOME/.local/state/riskgraph-test} \
            RISKGRAPH_NEO4J_PORT=$${RISKGRAPH_TEST_NEO4J_PORT:-7688} \
            RISKGRAPH_NEO4J_HEAP=1g RISKGRAPH_NEO4J_PAGECACHE=256m RISKGRAPH_NEO4J_URI=

.PHONY: install system-deps demo test test-fast lint neo4j-start neo4j-stop clean bench-env

system-deps:  ## Java 17 and Maven run Neo4j, chromium renders the report; from Debian when missing
	@command -v java >/dev/null && command -v mvn >/dev/null && command -v chromium >/dev/null || \
	  (apt-get update -q && apt-get install -y -q openjdk-17-jre-headless maven chromium)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: system-deps $(STAMP)

DEMO_ARGS ?=  # e.g. DEMO_ARGS=--reset to replace what the demo database holds

demo: install  ## generate → import → train → backtest → score → rings on 10,000 users
	$(BIN)/riskgraph neo4j start
	$(BIN)/riskgraph demo $(DEMO_ARGS)

test: install  ## the whole suite, including the tests against a real Neo4j
	$(TEST_ENV) $(BIN)/riskgraph neo4j start
	$(BIN)/python -m pytest

test-fast: install  ## unit tests only (no Neo4j, no model)
	$(BIN)/python -m pytest -m "not neo4j and not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check graph encoders training serving
	$(BIN)/mypy

neo4j-start: install
	$(BIN)/riskgraph neo4j start

neo4j-stop:
	$(BIN)/riskgraph neo4j stop

# bench/sampler_bench.py compares against PyG's NeighborLoader, which needs torch-sparse. It is
# compiled (not downloaded) against .venv's torch into a separate environment that reuses .venv's
# packages through a .pth file, so torch is not installed twice. The first build took ~40 minutes
# on 2 busy cores; pip caches the wheels, and the target is a no-op once they import.
BENCH_VENV := .venv-bench

bench-env: $(STAMP)  ## .venv-bench: .venv + torch-scatter/torch-sparse built for its torch
	@if $(BENCH_VENV)/bin/python -c "import torch_scatter, torch_sparse" 2>/dev/null; then \
	  echo "$(BENCH_VENV): torch-scatter and torch-sparse already importable"; \
	else \
	  set -e; \
	  test -x $(BENCH_VENV)/bin/python || $(BIN)/python -m venv --without-pip $(BENCH_VENV); \
	  main=$$($(BIN)/python -c "import sysconfig; print(sysconfig.get_path('purelib'))"); \
	  bench=$$($(BENCH_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))"); \
	  echo "import site; site.addsitedir('$$main')" > $$bench/riskgraph-main-venv.pth; \
	  $(BENCH_VENV)/bin/python -m pip install -q ninja; \
	  nice -n 19 env MAX_JOBS=$${MAX_JOBS:-2} FORCE_ONLY_CPU=1 \
	    $(BENCH_VENV)/bin/python -m pip install --no-build-isolation torch-scatter torch-sparse; \
	  $(BENCH_VENV)/bin/python -c "import torch, torch_sparse; print('torch', torch.__version__, 'torch-sparse', torch_sparse.__version__)" || \
	    { echo "a cached wheel built for another torch? $(BENCH_VENV)/bin/python -m pip cache remove 'torch_s*' and run again"; exit 1; }; \
	fi

clean:
	rm -rf out exports .pytest_cache .mypy_cache .ruff_cache
