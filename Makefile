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

.PHONY: run test index bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $(STAMP)

# Rebuilt whenever a corpus file is newer than the index.
$(INDEX)/meta.json: $(STAMP) $(CORPUS_FILES)
	$(BIN)/kb index corpus --index $(INDEX)
	@touch $(INDEX)/meta.json

index: $(INDEX)/meta.json

run: $(INDEX)/meta.json
	$(BIN)/kb serve --index $(INDEX) --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(INDEX) .pytest_cache .hypothesis tests/artifacts
