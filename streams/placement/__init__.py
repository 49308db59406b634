"""Placement stream: composition-aware GreedyJSQ and baseline policies."""
