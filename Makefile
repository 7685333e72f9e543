# rokd: two entry points, `make book` and `make test`. Both set up the pinned virtual environment first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= smoke
# `make book` executes the pipeline for smoke; published profiles (mini) render their committed
# results unless RUN=1 is given (a mini run takes hours).
ifeq ($(PROFILE),smoke)
RUN ?= 1
else
RUN ?= 0
endif
export PATH := $(abspath $(BIN)):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1
export TOKENIZERS_PARALLELISM := false
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: venv book pipeline test unit e2e browser clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "rokd needs Python 3.10+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# Run the pipeline of $(PROFILE) (cached: only changed steps re-run), then build the book from it.
pipeline: venv
	$(BIN)/rokd pipeline --profile $(PROFILE)

book: venv
	@if [ "$(RUN)" = "1" ]; then $(BIN)/rokd pipeline --profile $(PROFILE); fi
	$(BIN)/rokd book --profile $(PROFILE)

browser:
	@command -v chromium >/dev/null || { echo "installing Debian chromium for the browser check"; \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  { echo "ERROR: chromium is needed for the rendered-book check; install it (apt-get install chromium)"; exit 1; }; }

# Fast and offline: no data mirror (the `mirror` tests), no end-to-end runs (`slow`).
unit: venv
	$(BIN)/python -m pytest -q -m "not slow and not mirror"

# Whole suite: unit tests (incl. the published mini results' completeness), a papermill run of every
# notebook (smoke), a fresh book build, internal link check and a headless-Chromium render check, then
# the same book build + checks from the committed mini results. Prints the time of each stage.
test: venv browser
	$(BIN)/rokd check --profile smoke

clean:
	rm -rf _build book/chapters runs results/smoke
