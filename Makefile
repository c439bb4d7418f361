# Two commands matter: `make run` (the app locally) and `make test` (everything CI checks).
# Both set up what they need on a fresh machine with Python 3.11, Node 20 and npm.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
PYTEST_ARGS ?=
# Where `make run` listens: the app, the local identity provider, the portal, Azurite's table and queue services;
# and how many instances run the queue triggers (processes, as Azure scales out).
PORT ?= 7071
IDP_PORT ?= 7072
PORTAL_PORT ?= 4280
TABLE_PORT ?= 10002
QUEUE_PORT ?= 10001
WORKERS ?= 1
CHROMIUM ?= /usr/bin/chromium

.PHONY: setup run test unit lint typecheck infra-check bench clean browser

setup: $(STAMP_PY) $(STAMP_NODE)

$(STAMP_PY): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (PYTHON=$(PYTHON))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the browser tests (tests/browser), driven by Playwright through executable_path;
# nothing downloads a browser build (never `playwright install`).
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: setup
	$(PY) -m devhost serve --port $(PORT) --idp-port $(IDP_PORT) --portal-port $(PORTAL_PORT) \
		--table-port $(TABLE_PORT) --queue-port $(QUEUE_PORT) --workers $(WORKERS)

test: setup browser lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)
	bash scripts/checkov.sh

unit: $(STAMP_PY)
	$(PY) -m pytest tests/unit tests/contract -q

lint: $(STAMP_PY)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP_PY)
	$(VENV)/bin/mypy shared functions devhost bench/evaluation function_app.py

infra-check:
	bash scripts/checkov.sh

bench: setup
	$(PY) bench/cold_start.py
	$(PY) bench/table_calls.py
	$(PY) bench/api_roundtrips.py
	$(PY) bench/background.py
	$(PY) bench/concurrency.py
	$(PY) bench/insights.py
	$(PY) bench/upkeep.py
	$(PY) bench/shards.py
	$(PY) bench/record_changes.py
	$(PY) bench/health_eval.py
	$(PY) bench/data_rounds.py

clean:
	rm -rf $(VENV) .venv-checkov node_modules .pytest_cache .mypy_cache .ruff_cache
