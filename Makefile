# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test install migrate demo worker lint bench browser pdf-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/marketplace db upgrade

demo: migrate
	$(BIN)/marketplace demo load

## Serve on http://127.0.0.1:8000 with demo data (loaded once) and the in-process outbox worker.
run: pdf-deps demo
	$(BIN)/marketplace run

worker: install
	$(BIN)/marketplace worker

## Debian's Chromium drives the browser journeys (never a Playwright browser download).
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk; \
	  else \
	    echo "Chromium is missing: sudo apt-get install chromium fonts-noto-cjk" >&2; exit 1; \
	  fi; \
	fi

## Contract and notice PDFs: WeasyPrint needs Pango, and Chinese text needs Debian's Noto CJK fonts.
pdf-deps:
	@if ! fc-list :lang=zh 2>/dev/null | grep -q "Noto" || ! ldconfig -p | grep -q libpangoft2; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 fontconfig; \
	  else \
	    echo "PDF fonts/libraries are missing: sudo apt-get install fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0" >&2; exit 1; \
	  fi; \
	fi

## The whole suite on SQLite, or on PostgreSQL when TEST_DATABASE_URL is set.
test: install pdf-deps browser
	$(BIN)/ruff check marketplace tests bench
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check marketplace tests bench
	$(BIN)/ruff format --check marketplace tests bench

## Benchmarks (never part of the test suite); figures go to docs/benchmarks.md.
bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data .pytest_cache
