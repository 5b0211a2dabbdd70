"""Networks by name for the tests (``network.module: "tests.user_networks:<Class>"``): a user's own flax torso,
and classes that are wrong in each way a config can get a network wrong."""

import flax.linen as nn
import jax.numpy as jnp


class GatedMLP(nn.Module):
    """A user torso: two gated layers (a GLU-style block), features [batch, width]."""

    width: int = 32

    @nn.compact
    def __call__(self, x):
        for _ in range(2):
            x = nn.Dense(self.width)(x) * nn.sigmoid(nn.Dense(self.width)(x))
        return x


class Sequence3D(nn.Module):
    """Wrong: returns [batch, 4, width] instead of one feature vector per input."""

    @nn.compact
    def __call__(self, x):
        return jnp.repeat(nn.Dense(8)(x)[:, None, :], 4, axis=1)


class NeedsImages(nn.Module):
    """Wrong for vector observations: a convolution wants [batch, height, width, channels]."""

    @nn.compact
    def __call__(self, x):
        return nn.Conv(8, (3, 3))(x).reshape(x.shape[0], -1)


class NotAModule:
    """Wrong: a plain class."""
