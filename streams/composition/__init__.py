"""Composition stream: parent and child compositions of DAG requests, driven by events."""
