# The two commands a newcomer needs (see README.md). `.ci/run` calls `make test`.
VENV := .venv/bin

.PHONY: setup setup-test demo test unit lint up down

# What the demo and the stack need; setup-test adds what only the tests need (chromium
# for the dashboard's browser test, the openwhisk npm client): see deploy/setup.sh.
setup:
	@bash deploy/setup.sh

setup-test:
	@bash deploy/setup.sh --test

demo: setup
	$(VENV)/gleaner up --demo

# Lint, type-check and check the import floors (docs/architecture.md), then every test:
# unit tests and integration tests on the real embedded stack (brought up once by the
# test session).
test: setup-test lint
	$(VENV)/pytest -m "integration or not integration"

unit: setup
	$(VENV)/pytest -m "not integration"

lint:
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/lint-imports

up: setup
	$(VENV)/gleaner up

down:
	$(VENV)/gleaner down
