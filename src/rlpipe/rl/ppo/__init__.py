"""Proximal Policy Optimization: networks, losses and the compiled, device-parallel training loop."""
