"""Proximal Policy Optimization as an algorithm plugin: config, networks, losses, the per-device iteration."""
