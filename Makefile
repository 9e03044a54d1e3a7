# Two commands matter (see README): `make demo` runs the main job, `make test` the whole suite.
# Each installs what it needs into .venv first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck bench bench-render bench-frontend bench-stream bench-stream-guard bench-operator bench-discovery clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,fast]'
	touch $(STAMP)

install: $(STAMP)

# The main job: a frontend and two mocker workers on this machine (Ctrl-C stops everything).
demo: $(STAMP)
	$(BIN)/drivetrain up -f examples/agg.yaml --port 8000

test: $(STAMP)
	./scripts/test-deps.sh $(BIN)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

bench: bench-render bench-operator bench-discovery bench-frontend

bench-render: $(STAMP)
	$(BIN)/python benchmarks/bench_render.py

bench-operator: $(STAMP)
	$(BIN)/python benchmarks/bench_operator.py

bench-discovery: $(STAMP)
	$(BIN)/python benchmarks/bench_discovery.py

bench-frontend: $(STAMP)
	./benchmarks/bench_frontend.sh

# Streaming under realistic per-token timing, with aiperf (docs/performance.md). ARGS=--quick for
# a short development run; ARGS='--compare-rev main' adds another revision for before/after.
bench-stream: $(STAMP)
	./benchmarks/bench_stream.sh $(ARGS)

# Fails when the drivetrain/Dynamo ratios regress against benchmarks/stream/baseline.json. Not in
# `make test`: run it by hand before submitting changes to the runtime's serving path.
bench-stream-guard: $(STAMP)
	./benchmarks/bench_stream.sh --guard $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build dist src/*.egg-info
