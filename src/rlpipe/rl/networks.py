"""Network building blocks shared by the agents, and networks by name (a user's flax module as a torso)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh, "gelu": nn.gelu, "silu": nn.silu}


class MLP(nn.Module):
    """Dense layers; with ``hidden_scale``/``out_scale`` the kernels are orthogonal with that gain (biases 0),
    otherwise ``weight_init``: flax's default ("lecun_normal") or PyTorch nn.Linear's ("torch_uniform"). With
    ``torso`` (``{"module": "pkg.mod:Class", "kwargs": {...}}``) that module makes the features in place of the
    hidden layers, and only the output layer is this MLP's own."""

    hidden_sizes: Sequence[int]
    out_dim: int
    activation: str = "relu"
    hidden_scale: float | None = None
    out_scale: float | None = None
    torso: Mapping[str, Any] | None = None
    weight_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.torso is not None:
            x = build_torso(self.torso, name="torso")(x)
        else:
            act = ACTIVATIONS[self.activation]
            for width in self.hidden_sizes:
                x = act(_dense(width, self.hidden_scale, self.weight_init, x.shape[-1])(x))
        return _dense(self.out_dim, self.out_scale, self.weight_init, x.shape[-1])(x)


class ResidualMLP(nn.Module):
    """A SimBa-style torso (Lee et al. 2024): a linear embedding, ``num_blocks`` pre-layer-norm residual
    feed-forward blocks (``expansion`` x wider inside), and a final layer norm. The worked example of a network by
    name: ``network: {module: "rlpipe.rl.networks:ResidualMLP", kwargs: {hidden_size: 128, num_blocks: 2}}``."""

    hidden_size: int = 128
    num_blocks: int = 2
    expansion: int = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Dense(self.hidden_size, kernel_init=nn.initializers.orthogonal(1.0))(x)
        for _ in range(self.num_blocks):
            y = nn.LayerNorm()(x)
            y = nn.relu(nn.Dense(self.hidden_size * self.expansion, kernel_init=nn.initializers.he_normal())(y))
            x = x + nn.Dense(self.hidden_size, kernel_init=nn.initializers.he_normal())(y)
        return nn.LayerNorm()(x)


def torch_uniform(fan_in: int):
    """PyTorch nn.Linear's default bias initializer: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the bound its kernels'
    (kaiming_uniform with a = sqrt(5)) have too."""
    bound = 1.0 / float(fan_in) ** 0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


INITS = ("lecun_normal", "torch_uniform")


def _dense(width: int, scale: float | None, init: str = "lecun_normal", fan_in: int = 0) -> nn.Dense:
    if scale is None:
        if init == "torch_uniform":
            # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) both: for the kernel as flax's variance_scaling draws it
            return nn.Dense(width, kernel_init=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
                            bias_init=torch_uniform(fan_in))
        if init != "lecun_normal":
            raise ValueError(f"unknown network init {init!r} (one of {', '.join(INITS)})")
        return nn.Dense(width)
    return nn.Dense(width, kernel_init=nn.initializers.orthogonal(scale), bias_init=nn.initializers.zeros)


def flatten_obs(obs: jax.Array) -> jax.Array:
    return jnp.reshape(obs, (obs.shape[0], -1)).astype(jnp.float32)


def select(obs: jax.Array, mask: Sequence[int] | None) -> jax.Array:
    """The observation components the agent sees (``env.observation_mask``): all where ``mask`` is None."""
    return obs if mask is None else jnp.take(obs, jnp.asarray(tuple(mask), jnp.int32), axis=-1)


# ------------------------------------------------------------------------------------------ networks by name
def module_class(path: str) -> type:
    """The class ``package.module:ClassName`` names; ValueError saying what is wrong when it is not a flax module."""
    from rlpipe.rl.imports import import_object

    cls = import_object(path)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"{path} is not a flax.linen.Module class (it is {type(cls).__name__} {cls!r})")
    return cls


def build_torso(torso: Mapping[str, Any], name: str | None = None) -> nn.Module:
    """A torso module from its description ``{"module": "pkg.mod:Class", "kwargs": {...}}``."""
    kwargs = dict(torso.get("kwargs") or {})
    if name is not None:
        kwargs["name"] = name
    return module_class(torso["module"])(**kwargs)


def check_torso(torso: Mapping[str, Any], in_dim: int, key: str) -> int:
    """Import, build and shape-check a torso on a dummy input batch [2, in_dim] (traced, nothing is computed);
    returns its feature width. Every failure is a ConfigError naming ``key`` (the network section, or its
    ``actor``/``critic`` part): ``<key>.module`` for what the class is or returns, ``<key>.kwargs`` for its
    constructor."""
    from rlpipe.rl.errors import ConfigError

    try:
        cls = module_class(torso["module"])
    except ValueError as exc:
        raise ConfigError(f"{key}.module", f"{torso['module']!r}: {exc}") from None
    try:
        module = cls(**dict(torso.get("kwargs") or {}))
    except TypeError as exc:
        raise ConfigError(f"{key}.kwargs", f"{torso['module']} does not take them: {exc}") from None
    dummy = jax.ShapeDtypeStruct((2, in_dim), jnp.float32)
    try:
        out = jax.eval_shape(lambda x: module.init_with_output(jax.random.PRNGKey(0), x)[0], dummy)
    except Exception as exc:  # a user module may fail in any way on its input
        raise ConfigError(f"{key}.module", f"{torso['module']} fails on an input batch of shape (2, {in_dim}): "
                                           f"{type(exc).__name__}: {exc}") from None
    if not isinstance(out, jax.ShapeDtypeStruct) or out.ndim != 2 or out.shape[0] != 2 or out.shape[1] < 1:
        shape = getattr(out, "shape", type(out).__name__)
        raise ConfigError(f"{key}.module", f"{torso['module']} returns {shape} for an input batch of shape "
                                           f"(2, {in_dim}); a torso returns one feature vector per input: "
                                           f"shape (2, width)")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ConfigError(f"{key}.module", f"{torso['module']} returns {out.dtype} features; floats are needed")
    return int(out.shape[1])
