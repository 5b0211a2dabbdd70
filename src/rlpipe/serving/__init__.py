"""Serving trained policies: the MLflow pyfunc model and how it is logged."""
