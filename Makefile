# Two commands matter (see README): `make demo` runs the main job, `make test` the whole suite.
# Each installs what it needs into .venv first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo demo-rl test test-frameworks lint typecheck imports image bench bench-render bench-frontend bench-stream bench-stream-guard bench-admission bench-kv bench-kv-decision bench-disagg bench-operator bench-discovery bench-transformers bench-failover bench-rl tiny-model clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,fast]'
	touch $(STAMP)

install: $(STAMP)

# The main job: a frontend and two mocker workers on this machine (Ctrl-C stops everything).
demo: $(STAMP)
	$(BIN)/drivetrain up -f examples/agg.yaml --port 8000

# The RL example (examples/rl): its graph on this machine, then its training loop (rollouts
# through the openai client, a score, a CPU torch step); exits with the loop's exit status.
demo-rl: $(STAMP)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/drivetrain up -f examples/rl/run.yaml --port 8000

test: $(STAMP)
	./scripts/test-deps.sh $(BIN)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q

# distenv's full framework matrix: JAX and torch rendezvous for every source x group size x
# entry point, and TensorFlow imported in every rank. `make test` runs a subset that covers
# each source, framework and entry point; this adds the rest (several minutes on 2 cores).
test-frameworks: $(STAMP)
	./scripts/test-deps.sh $(BIN)
	DRIVETRAIN_TEST_FRAMEWORKS=1 $(BIN)/pytest -q tests/distenv -m "jax or torch or tensorflow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# The import contracts of docs/architecture.md (pyproject.toml, [tool.importlinter]).
imports: $(STAMP)
	$(BIN)/lint-imports

# The image of the Dockerfile, with docker or podman where an engine runs; else says why not.
image:
	./scripts/build-image.sh

bench: bench-render bench-operator bench-discovery bench-frontend bench-admission bench-transformers bench-failover bench-rl

bench-render: $(STAMP)
	$(BIN)/python benchmarks/bench_render.py

bench-operator: $(STAMP)
	$(BIN)/python benchmarks/bench_operator.py

bench-discovery: $(STAMP)
	$(BIN)/python benchmarks/bench_discovery.py

bench-frontend: $(STAMP)
	./benchmarks/bench_frontend.sh

# Engine failover: SIGKILL the active engine under load, 20 times (docs/performance.md). ARGS=--record
# writes benchmarks/results/failover.md.
bench-failover: $(STAMP)
	$(BIN)/python benchmarks/bench_failover.py $(ARGS)

# The tiny random Llama model (3.5 MB, git-ignored) that examples/real-cpu.yaml serves.
tiny-model: $(STAMP)
	./scripts/transformers-deps.sh $(BIN)
	$(BIN)/python scripts/tiny_model.py

bench-transformers: tiny-model
	$(BIN)/python benchmarks/bench_transformers.py

# Streaming under realistic per-token timing, with aiperf (docs/performance.md). ARGS=--quick for
# a short development run; ARGS='--compare-rev main' adds another revision for before/after.
bench-stream: $(STAMP)
	./benchmarks/bench_stream.sh $(ARGS)

# Fails when the drivetrain/Dynamo ratios regress against benchmarks/stream/baseline.json. Not in
# `make test`: run it by hand before submitting changes to the runtime's serving path.
bench-stream-guard: $(STAMP)
	./benchmarks/bench_stream.sh --guard $(ARGS)

# Overload at 2x and 10x the graph's capacity, with and without admission control, and the
# frontend's per-request cost of counting prompts (docs/performance.md). About 3 minutes.
# KV-aware routing: drivetrain's routers and Dynamo 1.6.1's KV router on a multi-turn,
# prefix-heavy workload (ARGS=--quick for a short run); writes benchmarks/results/kv.md.
bench-kv: $(STAMP)
	./benchmarks/bench_kv.sh $(ARGS)

# The KV router's decision time with 1,000 instances indexed (no servers; seconds).
bench-kv-decision: $(STAMP)
	$(BIN)/python benchmarks/kv/decision.py $(ARGS)

# Aggregated vs disaggregated prefill/decode on a long-prompt workload, drivetrain and Dynamo
# 1.6.1 (ARGS=--quick); writes benchmarks/results/disagg.md.
bench-disagg: $(STAMP)
	./benchmarks/bench_kv.sh --disagg $(ARGS)

bench-admission: $(STAMP)
	$(BIN)/python benchmarks/bench_admission.py $(ARGS)

# Fleet weight updates through the RL API: update_weights -> first token on the new version,
# 16 mocker workers under streaming load (docs/performance.md). ARGS=--record writes
# benchmarks/results/rl.md. About a minute.
bench-rl: $(STAMP)
	$(BIN)/python benchmarks/bench_rl.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build dist src/*.egg-info
