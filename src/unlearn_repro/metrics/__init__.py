"""Metrics: pure functions on arrays (exposure.py, accuracy.py) and collectors that run
a model (collect.py)."""
