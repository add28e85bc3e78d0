# smartmeter-connector: everything a fresh machine needs is installed from here.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
PYTEST_ARGS ?=

.PHONY: install system-deps test demo lint typecheck bench contracts clean

install: $(STAMP) node_modules/.installed system-deps

# Debian's docker-compose checks the compose files in the test suite (no Docker engine is needed for that);
# Debian's wrk is the ingest benchmark's C load generator.
system-deps:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null); \
	  else echo "docker-compose is missing: install Debian's docker-compose package (needed by tests/orion)"; fi; }
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null); \
	  else echo "wrk is missing: bench/ingest_bench.py falls back to its aiohttp sender (Debian package wrk)"; fi; }

$(STAMP): requirements.txt requirements-nodeps.txt requirements-dev.txt setup.py
	@command -v python3.11 >/dev/null 2>&1 && PYBIN=python3.11 || PYBIN=python3; \
	  test -x $(PY) || $$PYBIN -m venv .venv
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(PIP) install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PIP) install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

demo: install
	$(PY) -m connector demo

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: install
	.venv/bin/mypy connector ngsi devledger demo

bench: install
	$(PY) -m bench.all

contracts: install
	node contracts/compile.js

clean:
	rm -rf .venv node_modules var .pytest_cache .ruff_cache .mypy_cache
