# streamguard — the two commands: `make demo` (main job on the embedded default) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install models eval-cicids bench bench-quick compare proto-core-v2 test-tools reliability demo test lint test-unit test-integration kafka-up kafka-down kafka-status kafka-clean \
        mongo-up mongo-down mongo-status mongo-clean infra-up infra-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install streamguard (editable) with test tools

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@# Compile the window store's and the forest's kernels once (numba caches them beside the modules), so
	@# tests and workers start warm instead of compiling (~10-60 s) in each process.
	$(BIN)/python -c 'from features.store import compile_kernels; compile_kernels(); from scoring.forest import compile_kernel; compile_kernel()'
	@touch $@

kafka-up: install ## start the local Kafka broker (KRaft, jars fetched with Maven) on 127.0.0.1:9092
	@bash docker/local/kafka.sh up
kafka-down: ## stop the local Kafka broker
	@bash docker/local/kafka.sh down
kafka-status:
	@bash docker/local/kafka.sh status
kafka-clean: ## stop the local broker and delete its data
	@bash docker/local/kafka.sh clean

mongo-up: install ## start the local MongoDB-protocol server (FerretDB v1, SQLite) on 127.0.0.1:27017
	@bash docker/local/mongo.sh up
mongo-down: ## stop the local MongoDB-protocol server
	@bash docker/local/mongo.sh down
mongo-status:
	@bash docker/local/mongo.sh status
mongo-clean: ## stop the local MongoDB-protocol server and delete its data
	@bash docker/local/mongo.sh clean

infra-up: kafka-up mongo-up ## start both local servers
infra-down: kafka-down mongo-down ## stop both local servers

# Parallel test processes (pytest-xdist; scheduling in tests/scheduling.py). `make test XDIST=` runs them in one.
XDIST ?= -n 3 --dist loadgroup --no-loadscope-reorder

test-tools: ## programs some tests run: prometheus, promtool, nft (Debian's packages, via apt-get if missing)
	@bash docker/local/test-tools.sh

test: install test-tools ## run every test; the session starts (and stops) a real broker and MongoDB-protocol server
	$(BIN)/python -m pytest $(XDIST)

reliability: install ## fault runs (SIGKILL every 20 s, broker restart) and a long fuzzing pass (~10 min)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -m "reliability or integration or not integration" \
	  tests/streams/test_pipeline_recovery.py tests/streams/test_broker_restart.py tests/streams/test_feature_parity.py \
	  tests/features/test_parsing_fuzz.py tests/streams/test_contracts_fuzz.py

test-unit: install test-tools ## only the tests that need no server
	$(BIN)/python -m pytest $(XDIST) -m "not integration"

test-integration: install test-tools ## only the tests against the real servers
	$(BIN)/python -m pytest $(XDIST) -m "integration and not reliability"

lint: install ## ruff, then the layout rules (import circles, package boundaries, module sizes)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests/test_layout.py

MODELS := var/registry/streamguard/active.json

REAL_FLOWS := --flows data/cicids2017/ddos_part1.csv --flows data/cicids2017/portscan_part1.csv \
  --flows data/cicids2017/thursday_benign.csv

models: install ## train the default bundle (scenario generator + the real flows in data/) and make it active (~1 min)
	$(BIN)/streamguard train --activate --generator $(REAL_FLOWS)

# Retrained when the feature code is newer than the active bundle: a bundle of another feature
# schema is refused by the worker.
$(MODELS): features/extract.py
	@$(MAKE) --no-print-directory models

CICIDS_DIR ?= ../shared/data/cicids2017

eval-cicids: install ## train+evaluate on the CICIDS2017 samples (time split per file) as model "cicids2017"
	$(BIN)/streamguard train --name cicids2017 --features event --split time --no-activate \
	  --flows $(CICIDS_DIR)/ddos_part1.csv --flows $(CICIDS_DIR)/portscan_part1.csv --flows $(CICIDS_DIR)/thursday_benign.csv

BENCH_ARGS ?=

bench: install $(MODELS) kafka-up ## benchmarks (not part of `make test`; ~1 h at 1M events): var/bench/report.json + .md
	$(BIN)/python -m tests.benchmarks.bench_scoring
	$(BIN)/python -m tests.benchmarks.bench_stages
	$(BIN)/python -m tests.benchmarks.bench_pipeline $(BENCH_ARGS)

bench-quick: install $(MODELS) kafka-up ## the same figures on a small workload (a few minutes), to try the harness
	$(BIN)/python -m tests.benchmarks.bench_pipeline --events 20000 --rates 1000 --latency-events 3000 \
	  --entities 4000 --per-event-seconds 10 --swaps 3

compare: install $(MODELS) ## streamguard against fail2ban and CrowdSec on public SSH and web logs: the hosts each blocks (needs fail2ban, crowdsec)
	$(BIN)/python -m tests.benchmarks.compare_tools
	$(BIN)/python -m tests.benchmarks.compare_web

proto-core-v2: install ## the stream core v2 prototype's offline figures per stage (docs/design/core-v2.md; ~4 min)
	$(BIN)/python -m tests.benchmarks.proto_core_v2

demo: install $(MODELS) ## the main job: local Kafka, a worker, ~60 s of traffic with attacks, live view, summary
	@$(BIN)/streamguard demo

clean: ## remove the venv, caches and local server data
	-@bash docker/local/kafka.sh clean
	-@bash docker/local/mongo.sh clean
	rm -rf $(VENV) .cache var .pytest_cache *.egg-info
