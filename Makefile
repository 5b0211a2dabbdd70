# rlpipe: `make run` trains the default SAC agent, `make test` runs the test suite.
# Both create .venv from requirements.lock (exact versions) on first use; needs only python3 (3.11).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# No prompts and nothing sent anywhere: telemetry of kedro and mlflow is off.
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup run test clean-cache

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c requirements.lock -e ".[dev]"
	touch $@

run: setup
	$(BIN)/kedro run --pipeline=sac

test: setup
	$(BIN)/python -m pytest

clean-cache:
	rm -rf .jax_cache
