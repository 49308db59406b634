"""Predictor/validator stream (Faust): dag.requests -> dag.plans, the allocations on the plan."""
