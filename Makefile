# rlpipe: `make run` trains the default SAC agent, `make test` runs the test suite.
# Both create .venv on first use at the exact versions of requirements.lock; needs only python3 (3.11).
# `make run` installs the package alone (what the default SAC job needs); `make test` adds the dev extra
# (MuJoCo, Brax, JaxMARL, Optuna, kedro-viz, pytest, mkdocs, ...) to the same .venv, so it also works after `make run`.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --disable-pip-version-check -q -c requirements.lock

# No prompts and nothing sent anywhere: telemetry of kedro and mlflow is off.
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup setup-dev run test test-fast system-packages bench ui serve viz clean-cache schemas docs docs-serve

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

# requirements.lock pins every package of the dev extra; as constraints (-c) it fixes the versions of whatever subset
# is installed, so the base install and the dev install agree.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e ".[dev]"
	touch $@

$(VENV)/.installed-viz: $(VENV)/.installed
	$(PIP) -e ".[viz]"
	touch $@

run: setup
	$(BIN)/kedro run --pipelines=sac

# Two workers (pytest-xdist): much of the suite waits on Kedro subprocesses and compilations, so on 2 cores it
# finishes in about 60% of the time of one worker. --dist loadgroup: the tests of a file that share a module-scoped
# run (pytest.mark.xdist_group) stay on one worker. -rs: each skipped test with its reason (e.g. no stored bits for
# this kind of CPU). --durations: the log ends with the 25 slowest tests.
# One file or test: .venv/bin/python -m pytest tests/test_x.py
test: setup-dev system-packages
	$(BIN)/python -m pytest -n 2 --dist loadgroup -rs --durations=25

# The fast tier: every test file's cheap tests, no test marked slow (real learning runs, multi-process and
# SIGKILL-and-resume runs, the default-budget runs); a few minutes on 2 cores. `make test` runs everything.
test-fast: setup-dev system-packages
	$(BIN)/python -m pytest -n 2 --dist loadgroup -rs -m "not slow"

# What the tests need from the system, installed with apt-get where it is available: headless Chromium (the docs'
# browser test), Mesa's EGL (MuJoCo's renderer draws the films of MuJoCo envs headless) and a PostgreSQL server
# (the search's workers share a study on it; the tests start a throwaway cluster of their own, never the system's).
system-packages:
	@{ command -v chromium >/dev/null && ls /usr/lib/*/libEGL_mesa.so.0 /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; } || { command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq chromium libegl1 libegl-mesa0 libgl1-mesa-dri postgresql >/dev/null; } || echo "make test: chromium, Mesa's EGL and PostgreSQL could not be installed (no apt-get, or it failed): the docs' browser test and the PostgreSQL search test will skip, MuJoCo films fall back to observation bars"

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

# Serve SAC's @champion policy (ALGO=ppo: PPO's): POST {"inputs": [[cos, sin, theta_dot], ...]} to 127.0.0.1:5001/invocations
serve: setup
	PATH=$(CURDIR)/$(BIN):$$PATH MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/mlflow.db \
	  $(BIN)/mlflow models serve -m models:/rlpipe-$(or $(ALGO),sac)@champion --env-manager local -h 127.0.0.1 -p 5001

# The pipeline DAG in kedro-viz: http://127.0.0.1:4141
viz: $(VENV)/.installed-viz
	$(BIN)/kedro viz run --no-browser --host 127.0.0.1 --port 4141

# The documentation site (mkdocs.yml, docs/): built strict (a dead link or reference fails) into site/;
# docs-serve serves it with live reload on http://127.0.0.1:8000
docs: setup-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: setup-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8000

clean-cache:
	rm -rf .jax_cache

# conf/schemas/*.json (the parameter files' JSON Schemas) from the typed configs; run after changing a config class
schemas: setup
	$(BIN)/python -m rlpipe.schemas
