# The single entry point: every target works on a fresh clone.
#   make demo   walk the whole certificate lifecycle against a local, real Caramel server
#   make test   the package suite and the real-server suite
#   make lint   ruff (format + lint) and mypy

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSTEM_PACKAGES := nginx openssl curl

.PHONY: all venv system-deps test test-unit test-e2e lint format demo clean

all: test

# System packages the tests and the demo need (nginx fronts the real server).
system-deps:
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do PATH="$$PATH:/usr/sbin:/sbin" command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(STAMP)

test: venv system-deps
	$(BIN)/python -m pytest -q

test-unit: venv
	$(BIN)/python -m pytest -q -m "not e2e"

test-e2e: venv system-deps
	$(BIN)/python -m pytest -q -m e2e

lint: venv
	$(BIN)/ruff format --check caramel_embedded tests
	$(BIN)/ruff check caramel_embedded tests
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format caramel_embedded tests
	$(BIN)/ruff check --fix caramel_embedded tests

demo: venv system-deps
	$(BIN)/python -m tests.e2e.demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .cache build/work dist

# Targets kept beside what they build: ARM roots and test-arm, firmware installation.
-include build/arm.mk
-include firmware-integration/install.mk
