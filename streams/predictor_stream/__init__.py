"""Predictor/validator stream (Faust): dag.requests -> dag.plans, allocations to Redis."""
