"""Shared pytest wiring: integration tests need ``-m integration`` or run by default
with everything; ``-m 'not integration'`` runs the unit tests alone."""
