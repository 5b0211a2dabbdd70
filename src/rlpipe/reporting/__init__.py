"""Plots, animations and metric tables of a run (matplotlib, headless; no Kedro)."""
