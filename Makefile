# One-command set-up: every target that needs Python depends on .venv, which installs the
# pinned dependencies (requirements.lock) and the project itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run demo test test-unit test-e2e lint schemas clean system-deps bench bench-quick

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/billing run

demo: $(STAMP)
	$(VENV)/bin/billing demo

test: $(STAMP) system-deps
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.run

bench-quick: $(STAMP)
	$(PY) -m bench.run --quick

system-deps:
	@bash tools/system-deps.sh

test-unit: $(STAMP)
	$(PY) -m pytest -q -m "not e2e"

lint: $(STAMP)
	$(VENV)/bin/ruff check schemas services tests bench
	$(VENV)/bin/mypy schemas services bench

schemas: $(STAMP)
	$(PY) -m schemas.generate

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
