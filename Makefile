# One-command set-up: every target that needs Python depends on .venv, which installs the
# pinned dependencies with the development tools (requirements-dev.lock: requirements.lock,
# the run-time pins, and the [dev] extra's) and the project itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run demo test test-unit test-e2e lint schemas clean system-deps kafka bench bench-quick chaos

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

run: $(STAMP) kafka
	$(VENV)/bin/billing run

demo: $(STAMP) kafka
	$(VENV)/bin/billing demo

test: $(STAMP) system-deps kafka
	$(PY) -m pytest -q

bench: $(STAMP) kafka
	$(PY) -m bench.run

bench-quick: $(STAMP) kafka
	$(PY) -m bench.run --quick

# Three Kafka brokers, two instances of every worker, load and faults for CHAOS_SECONDS
# (default 300); its last line is a JSON verdict, exit 0 only if every invariant holds.
# Then the run with the inbox switched off, which must fail (tests/chaos).
CHAOS_SECONDS ?= 300
chaos: $(STAMP) kafka
	$(PY) -m bench.chaos --seconds $(CHAOS_SECONDS)
	$(PY) -m pytest -q -m chaos tests/chaos

system-deps:
	@bash tools/system-deps.sh

# Apache Kafka's jars, fetched by Maven from tools/kafka/pom.xml into a cache (once per
# version). Without Java or Maven the stack falls back to Tansu, except under CI=true.
kafka: $(STAMP)
	@bash tools/system-deps.sh kafka
	@$(PY) -m services.devstack.kafka fetch || [ "$$CI" != true ]

test-unit: $(STAMP)
	$(PY) -m pytest -q -m "not e2e"

lint: $(STAMP)
	$(VENV)/bin/ruff check schemas services tests bench
	$(VENV)/bin/mypy schemas services bench

schemas: $(STAMP)
	$(PY) -m schemas.generate

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
