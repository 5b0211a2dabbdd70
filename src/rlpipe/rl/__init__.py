"""The RL library: pure JAX, no Kedro below this package."""
