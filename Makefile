# make run: set up and start the demo; make test: the whole suite (PostgreSQL and Redis on loopback).
# The first of python3.13, 3.12 and 3.11 that runs (a pyenv shim for a version not enabled does not), or PYTHON=.
PYTHON ?= $(or $(shell for p in python3.13 python3.12 python3.11; do $$p -c '' >/dev/null 2>&1 && { echo $$p; break; }; done),python3)
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
EMULATOR_PORT ?= 8765

.PHONY: run test test-unit install migrate clean screenshots bench bench-quick bench-scale bench-scale-quick

# One virtualenv per Python: asking for another version makes it again.
$(VENV)/.python-$(PYTHON_VERSION):
	@case "$(PYTHON_VERSION)" in 3.11|3.12|3.13) ;; \
	  *) echo "Flowgate needs Python 3.11, 3.12 or 3.13; '$(PYTHON)' is $(or $(PYTHON_VERSION),not found)." \
	       "Install one, or set PYTHON=/path/to/python3.13." >&2; exit 1;; esac
	@echo "Python $(PYTHON_VERSION) ($(PYTHON)) for $(VENV); PYTHON=python3.1x picks another."
	@rm -rf $(VENV)
	@$(PYTHON) -m venv $(VENV)
	@touch $@

# Quiet: pip's output goes to var/install-$(PYTHON_VERSION).log, shown only when the install fails.
$(VENV)/.installed: pyproject.toml $(VENV)/.python-$(PYTHON_VERSION)
	@mkdir -p var
	@echo "Installing Flowgate and its dependencies into $(VENV) (about a minute the first time)."
	@{ $(PY) -m pip install --disable-pip-version-check --upgrade pip && \
	   $(PY) -m pip install --disable-pip-version-check -e '.[dev]'; } > var/install-$(PYTHON_VERSION).log 2>&1 || \
	 { tail -n 40 var/install-$(PYTHON_VERSION).log; echo "The install failed: var/install-$(PYTHON_VERSION).log" >&2; exit 1; }
	@touch $@

install: $(VENV)/.installed

# A local .env with fresh keys, never committed; the real environment wins over it.
.env: | $(VENV)/.installed
	@$(PY) scripts/make_env.py $(EMULATOR_PORT) > .env
	@echo "Wrote .env with a new SECRET_KEY and FLOWGATE_ENCRYPTION_KEYS (keep it: it decrypts your data)."

migrate: install .env
	@$(PY) manage.py migrate --no-input --verbosity 0

# The Procfile's processes (web, worker, beat) and the emulator, through scripts/run_demo.py.
run: migrate
	@$(PY) manage.py seed_demo --salesforce-url http://127.0.0.1:$(EMULATOR_PORT) > /dev/null
	@$(PY) scripts/run_demo.py --port $(PORT) --emulator-port $(EMULATOR_PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything but the fault tests, the browser tests and the integration tests (real worker and emulator): what
# CI runs on each further Python version (.ci/run), e.g. make test-unit PYTHON=python3.13 VENV=.venv-3.13
test-unit: install
	$(PY) -m pytest -m "not faults and not integration" --ignore=tests/browser $(PYTEST_ARGS)

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
