"""Soft Actor-Critic: networks, losses and the compiled, device-parallel training loop."""
