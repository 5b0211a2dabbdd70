"""Kedro stages shared by the algorithm pipelines: node functions plus their wiring, namespaced by each user."""
