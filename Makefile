# make run: set up and start the demo; make test: the whole suite (PostgreSQL and Redis on loopback).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
EMULATOR_PORT ?= 8765

.PHONY: run test install migrate clean screenshots bench bench-quick bench-scale bench-scale-quick

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# A local .env with fresh keys, never committed; the real environment wins over it.
.env: | $(VENV)/.installed
	$(PY) scripts/make_env.py $(EMULATOR_PORT) > .env
	@echo "Wrote .env with a new SECRET_KEY and FLOWGATE_ENCRYPTION_KEYS (keep it: it decrypts your data)."

migrate: install .env
	$(PY) manage.py migrate --no-input

run: migrate
	$(PY) manage.py seed_demo --salesforce-url http://127.0.0.1:$(EMULATOR_PORT)
	$(PY) scripts/run_demo.py --port $(PORT) --emulator-port $(EMULATOR_PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Throughput, latency and cost against the emulator at 50 ms, with the baselines (bench/results/latest.md,
# docs/benchmark.png); bench-quick in under 2 minutes.
bench: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench.throughput
bench-quick: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench.throughput --quick

# The million-trigger scale benchmark (console and admin pages), and its quick version.
bench-scale: install
	$(PY) -m bench.scale
bench-scale-quick: install
	$(PY) -m bench.scale --quick

# Pictures of the console, a trigger page and the fire form, for the README.
screenshots: install
	FLOWGATE_SCREENSHOTS_DIR=docs/screenshots $(PY) -m pytest tests/browser/test_screenshots.py -q

clean:
	rm -rf var .pytest_cache
