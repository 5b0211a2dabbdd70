"""Scenarios: one row = one episode's full specification (env parameters + a reset seed).

Scenario tables are plain DataFrames (they live in the catalog as Parquet); inside JAX they become a
:class:`ScenarioBatch`, the env params struct with a leading scenario axis plus one reset key per row.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import struct

from rlpipe.rl.errors import ConfigError
from rlpipe.rl.envs.registry import EnvSpec

ID_COLUMN = "scenario_id"
SEED_COLUMN = "reset_seed"
_SEED_LIMIT = 2**31 - 1


class ScenarioError(ValueError):
    """A scenario table is unusable; the message names the table, column and row."""


@struct.dataclass
class ScenarioBatch:
    params: object  # env params struct, every leaf with a leading [num_scenarios] axis
    reset_keys: jax.Array  # uint32 [num_scenarios, 2]
    weights: jax.Array | None = None  # probability of drawing each scenario at a reset; None: uniform

    @property
    def size(self) -> int:
        return self.reset_keys.shape[0]


def check_scenario_ranges(ranges: Mapping[str, tuple[float, float]], spec: EnvSpec, key: str) -> None:
    """Every ranged name must be an env parameter, with low <= high (integers for integer parameters)."""
    fields = spec.param_fields
    for name, (low, high) in ranges.items():
        if name not in fields:
            raise ConfigError(f"{key}.{name}", f"{spec.id} has no parameter {name!r}; "
                                               f"its parameters are {', '.join(fields)}")
        if low > high:
            raise ConfigError(f"{key}.{name}", f"low {low} is above high {high}")
        if fields[name] is int and (low != int(low) or high != int(high)):
            raise ConfigError(f"{key}.{name}", f"{name} is an integer parameter; got [{low}, {high}]")


def generate_scenarios(spec: EnvSpec, ranges: Mapping[str, tuple[float, float]], num_train: int, num_eval: int,
                       seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disjoint train and eval scenario tables, reproducible from ``seed``.

    Reset seeds are drawn without replacement, so no eval scenario repeats a training one; parameters named in
    ``ranges`` are uniform in [low, high] per scenario, the others keep the environment's default.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5CE7]))
    total = num_train + num_eval
    seeds = rng.choice(_SEED_LIMIT, size=total, replace=False).astype(np.int64)
    columns: dict[str, np.ndarray] = {ID_COLUMN: np.arange(total, dtype=np.int64), SEED_COLUMN: seeds}
    for name, kind in spec.param_fields.items():
        default = getattr(spec.default_params, name)
        if name in ranges:
            low, high = ranges[name]
            if kind is int:
                columns[name] = rng.integers(int(low), int(high), size=total, endpoint=True).astype(np.int64)
            else:
                columns[name] = rng.uniform(low, high, size=total)
        else:
            columns[name] = np.full(total, default, dtype=np.int64 if kind is int else np.float64)
    table = pd.DataFrame(columns)
    return table.iloc[:num_train].reset_index(drop=True), table.iloc[num_train:].reset_index(drop=True)


def scenarios_to_batch(table: pd.DataFrame, spec: EnvSpec, name: str) -> ScenarioBatch:
    """Turn a scenario table into the batched params struct; ``name`` (e.g. the file) is used in errors.

    Every problem is a :class:`ScenarioError` naming the table, the column and the first bad row: missing
    columns, non-numeric dtypes, NaN/Inf, fractions in integer columns, values a float32 cannot hold, duplicate
    scenario ids, reset seeds outside [0, 2^31 - 1), and non-positive values of parameters whose default is
    positive (masses, lengths, time steps, episode lengths).
    """
    if len(table) == 0:
        raise ScenarioError(f"{name}: the scenario table has no rows")
    integer_columns = {ID_COLUMN, SEED_COLUMN} | {c for c, kind in spec.param_fields.items() if kind is int}
    required = [ID_COLUMN, SEED_COLUMN, *spec.param_fields]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ScenarioError(f"{name}: missing column(s) {', '.join(missing)}; required: {', '.join(required)}")
    arrays = {}
    for column in required:
        values = table[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise ScenarioError(f"{name}: column {column!r} must be numeric, has dtype {values.dtype}")
        data = values.to_numpy(dtype=np.float64)
        _first_bad(name, column, data, ~np.isfinite(data), "not finite")
        _first_bad(name, column, data, np.abs(data) > _FLOAT32_MAX, "too large for float32")
        if column in integer_columns:
            _first_bad(name, column, data, data != np.round(data), "expected an integer")
        if column in spec.param_fields and float(getattr(spec.default_params, column)) > 0:
            _first_bad(name, column, data, data <= 0, f"must be > 0 ({column} defaults to "
                                                      f"{getattr(spec.default_params, column)})")
        arrays[column] = data
    ids = arrays.pop(ID_COLUMN)
    _first_bad(name, ID_COLUMN, ids, pd.Series(ids).duplicated().to_numpy(), "a duplicate scenario id")
    seeds = arrays.pop(SEED_COLUMN)
    _first_bad(name, SEED_COLUMN, seeds, (seeds < 0) | (seeds >= _SEED_LIMIT), f"allowed 0 <= seed < {_SEED_LIMIT}")
    for column, kind in spec.param_fields.items():
        if kind is int:
            _first_bad(name, column, arrays[column], np.abs(arrays[column]) >= 2**31, "too large for int32")
    params = spec.default_params.replace(**{
        column: jnp.asarray(values, jnp.int32 if spec.param_fields[column] is int else jnp.float32)
        for column, values in arrays.items()
    })
    reset_keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds.astype(np.int32)))
    return ScenarioBatch(params=params, reset_keys=reset_keys)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _first_bad(name: str, column: str, data: np.ndarray, bad: np.ndarray, problem: str) -> None:
    rows = np.flatnonzero(bad)
    if rows.size:
        raise ScenarioError(f"{name}: column {column!r} row {int(rows[0])} is {float(data[rows[0]])!r}: {problem}")


def draw(batch: ScenarioBatch, key: jax.Array, num: int) -> jax.Array:
    """Indices of ``num`` scenarios drawn for resets: uniformly, or by ``batch.weights`` (a curriculum's)."""
    if batch.weights is None:
        return jax.random.randint(key, (num,), 0, batch.size)
    return jax.random.choice(key, batch.size, (num,), p=batch.weights)


def take(batch: ScenarioBatch, index: jax.Array) -> tuple[object, jax.Array]:
    """Env params and reset keys of the scenarios at ``index`` (any shape), inside JAX."""
    params = jax.tree.map(lambda leaf: leaf[index], batch.params)
    return params, batch.reset_keys[index]


def max_episode_steps(batch: ScenarioBatch) -> int:
    """The longest episode any scenario of the batch allows (a static bound for evaluation scans)."""
    return int(np.max(np.asarray(batch.params.max_steps_in_episode)))
