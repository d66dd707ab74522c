# Roomcast build and test entry points. `make test` works on a fresh clone:
# it creates .venv, installs the package with its test extras and the npm test
# peers, then runs pytest. Stamps make re-runs skip installs unless the inputs
# (pyproject.toml, package.json, package-lock.json) changed.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
PYTEST_ARGS ?=
BENCH_ARGS ?=

# npm ci needs a lock file; without one, npm install resolves package.json.
ifneq ($(wildcard package-lock.json),)
NPM_INSTALL := npm ci
else
NPM_INSTALL := npm install
endif

.PHONY: test demo bench lint venv node chromium clean-stamps

# The whole suite runs on Roomcast's uvicorn WebSocket protocol (what `roomcast run` and
# `socketio.run` serve with); the live-server suites run again over plain ASGI, as a bare
# `uvicorn app:app` serves.
test: $(VENV_STAMP) $(NODE_STAMP) chromium
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	ROOMCAST_TEST_WS=websockets-sansio $(VENV)/bin/pytest -q tests/server tests/asyncio tests/interop tests/reliability tests/cluster $(PYTEST_ARGS)

demo: $(VENV_STAMP) $(NODE_STAMP)
	$(VPY) examples/demo.py

bench: $(VENV_STAMP) $(NODE_STAMP)
	$(VPY) -m bench $(BENCH_ARGS)

lint: $(VENV_STAMP)
	$(VENV)/bin/mypy

venv: $(VENV_STAMP)

node: $(NODE_STAMP)

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip

# Re-run when the package's metadata (dependencies, extras) changes.
$(VENV_STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install --quiet -e '.[test]'
	touch $@

$(NODE_STAMP): package.json $(wildcard package-lock.json)
	$(NPM_INSTALL) --no-audit --no-fund
	touch $@

# tests/browser drives Debian's chromium (Playwright downloads no browser here): install it when
# missing and apt-get exists (as root); elsewhere those tests skip, or fail under CI=true.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	    if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	    else \
	        echo "chromium is missing (install it: apt-get install chromium): tests/browser will not run" >&2; \
	    fi; }

# Forces the next `make test` to reinstall both environments.
clean-stamps:
	rm -f $(VENV_STAMP) $(NODE_STAMP)
