# rlpipe: `make run` trains the default SAC agent, `make test` runs the test suite.
# Both create .venv from requirements.lock (exact versions) on first use; needs only python3 (3.11).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# No prompts and nothing sent anywhere: telemetry of kedro and mlflow is off.
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup run test test-fast bench ui serve viz clean-cache schemas docs docs-serve

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c requirements.lock -e ".[dev]"
	touch $@

run: setup
	$(BIN)/kedro run --pipelines=sac

# Two workers (pytest-xdist): much of the suite waits on Kedro subprocesses and compilations, so on 2 cores it
# finishes in about 60% of the time of one worker. --dist loadgroup: the tests of a file that share a module-scoped
# run (pytest.mark.xdist_group) stay on one worker. One file or test: .venv/bin/python -m pytest tests/test_x.py
test: setup
	@{ command -v chromium >/dev/null && ls /usr/lib/*/libEGL_mesa.so.0 >/dev/null 2>&1; } || { command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq chromium libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null; } || echo "make test: chromium and Mesa's EGL could not be installed (no apt-get, or it failed): the docs' browser test will skip, MuJoCo films fall back to observation bars"
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# The fast tier: every test file's cheap tests, no test marked slow (real learning runs, multi-process and
# SIGKILL-and-resume runs, the default-budget runs); a few minutes on 2 cores. `make test` runs everything.
test-fast: setup
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || echo "make test-fast: chromium could not be installed: the docs' browser test will skip"
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"

# Benchmarks against Stable-Baselines3 and rejax (peers in their own venv): writes benchmarks/results/
# (about 70 minutes: case 5 also runs the last pmap commit, case 7 the commit before the quiet console, case 8 SB3 on HalfCheetah; e.g. BENCH_ARGS="--pairs 1 --cases 2,4" for a quick look)
PEERS := .venv-peers
$(PEERS)/.installed: benchmarks/requirements-peers.txt
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --disable-pip-version-check -q -r benchmarks/requirements-peers.txt
	touch $@

bench: setup $(PEERS)/.installed
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# MLflow UI over the project's run store: http://127.0.0.1:5000
ui: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

# Serve the latest registered SAC policy: POST {"inputs": [[cos, sin, theta_dot], ...]} to http://127.0.0.1:5001/invocations
serve: setup
	PATH=$(CURDIR)/$(BIN):$$PATH MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/mlflow.db \
	  $(BIN)/mlflow models serve -m models:/rlpipe-sac/latest --env-manager local -h 127.0.0.1 -p 5001

# The pipeline DAG in kedro-viz: http://127.0.0.1:4141
viz: setup
	$(BIN)/kedro viz run --no-browser --host 127.0.0.1 --port 4141

# The documentation site (mkdocs.yml, docs/): built strict (a dead link or reference fails) into site/;
# docs-serve serves it with live reload on http://127.0.0.1:8000
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8000

clean-cache:
	rm -rf .jax_cache

# conf/schemas/*.json (the parameter files' JSON Schemas) from the typed configs; run after changing a config class
schemas: setup
	$(BIN)/python -m rlpipe.schemas
