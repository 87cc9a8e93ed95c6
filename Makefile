# Two commands set everything up on a fresh machine with Python 3.11+ and make:
#   make run   - virtualenv, install, build the index if missing or stale, serve
#   make test  - virtualenv, install, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
INDEX  ?= index
STAMP  := $(VENV)/.installed
CORPUS_FILES := $(shell find corpus -type f -not -path '*/eval/*' 2>/dev/null)

CHROMIUM := /usr/bin/chromium

.PHONY: run test index bench clean browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $(STAMP)

# Rebuilt whenever a corpus file or the library is newer than the index.
$(INDEX)/meta.json: $(STAMP) $(CORPUS_FILES) $(wildcard kb/*.py)
	$(BIN)/kb index corpus --index $(INDEX)
	@touch $(INDEX)/meta.json

index: $(INDEX)/meta.json

run: $(INDEX)/meta.json
	$(BIN)/kb serve --index $(INDEX) --host $(HOST) --port $(PORT)

# The browser tests drive Debian's Chromium (never a downloaded browser). As root on a
# machine with apt-get, install it (and a Japanese font for the screenshots) when missing.
# Never fatal: without Chromium the browser tests are skipped and say why (-rs).
browser:
	@if [ -x $(CHROMIUM) ] && fc-list :lang=ja 2>/dev/null | grep -q .; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium and a Japanese font for the browser tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium fonts-ipafont-gothic; } >/dev/null 2>&1 \
	    || echo "could not install chromium: the browser tests will be skipped"; \
	else echo "$(CHROMIUM) or a Japanese font is missing and this is not root: browser tests may skip"; fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -rs

clean:
	rm -rf $(VENV) $(INDEX) .pytest_cache .hypothesis tests/artifacts

# Every benchmark (reads ../shared/data; not part of `make test`); rewrites BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/python -m bench.run_all
