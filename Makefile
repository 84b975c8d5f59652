# livecomment: `make run` starts the demo, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
SERVER ?= daphne

.PHONY: run test venv deps lint typecheck fmt bench bench-smoke faults clean browser-deps

venv: $(BIN)/.installed

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v 0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py serve --host $(HOST) --port $(PORT) --workers $(WORKERS) --server $(SERVER)

test: venv browser-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Headless Chromium for the browser tests (tests/test_browser_*.py, Playwright
# driving Debian's chromium; never `playwright install`). Installed when
# missing and we are root; otherwise those tests skip and say why.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "browser-deps: installing Debian's chromium for the browser tests"; \
		( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null ) \
			|| echo "browser-deps: could not install chromium; the browser tests will skip"; \
	fi

lint: venv typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy with django-stubs on the write path and the dispatcher (which files: mypy.ini).
typecheck: venv
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var staticfiles test-artifacts

# --- benchmark (bench/, docs/BENCHMARKS.md) ------------------------------------
# `make bench` runs the standard matrix and rewrites docs/BENCHMARKS.md and
# docs/bench-fanout.png; BENCH_DATABASE_URL / BENCH_REDIS_URL add the write
# benchmark on PostgreSQL + Redis (use a Redis db of its own, e.g. /14).
BENCH_ARGS ?=
BENCH_DATABASE_URL ?=
BENCH_REDIS_URL ?=

$(BIN)/.bench-installed: requirements-bench.txt $(BIN)/.installed
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-bench.txt
	touch $@

bench: venv $(BIN)/.bench-installed
	$(BIN)/python -m bench matrix \
		$(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL)) \
		$(if $(BENCH_REDIS_URL),--redis-url $(BENCH_REDIS_URL)) $(BENCH_ARGS)

bench-smoke: venv
	$(BIN)/python -m bench smoke

# The empty-Redis restart scenario runs FAULT_EMPTY_REDIS_RUNS times per server
# with FAULT_EMPTY_REDIS_VIEWERS viewers (a one-in-five race needs ~10 runs).
FAULT_EMPTY_REDIS_VIEWERS ?= 3000
FAULT_EMPTY_REDIS_RUNS ?= 10

faults: venv
	rm -f var/faults.jsonl && mkdir -p var
	FAULTS_REPORT=$(CURDIR)/var/faults.jsonl FAULT_EMPTY_REDIS_VIEWERS=$(FAULT_EMPTY_REDIS_VIEWERS) \
		FAULT_EMPTY_REDIS_RUNS=$(FAULT_EMPTY_REDIS_RUNS) \
		timeout 1200 $(BIN)/python -m pytest -m faults -p no:cacheprovider -q
	$(BIN)/python -m tests.faults_report var/faults.jsonl > docs/RELIABILITY.md
	@echo "wrote docs/RELIABILITY.md"
