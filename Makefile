# patchprop: `make demo` runs the patch path locally; `make test` runs every check CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := docker-registry buildah skopeo busybox-static shellcheck chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck cfn-lint unit integration bench sam-build clean system-deps venv

demo: venv system-deps
	$(BIN)/patchprop demo

# Two workers (the machine's cores); --dist loadfile keeps each module in one worker, so an e2e
# module's local stack (in-process, module-scoped) is started once. Each worker has its own
# tmp_path base, moto and ports (all chosen free, never fixed); see tests/conftest.py. The 15
# slowest tests are listed at the end, to see where the run's time goes.
PYTEST_WORKERS ?= 2
test: venv system-deps lint typecheck
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=15

venv: $(VENV)/.installed

# Said before each step: the first run installs for about a minute, and should say so.
$(VENV)/.installed: pyproject.toml layers/shared/requirements.txt
	@test -d $(VENV) || { echo "patchprop: creating the virtualenv $(VENV) (once)"; $(PYTHON) -m venv $(VENV); }
	@echo "patchprop: upgrading pip in $(VENV)"
	$(BIN)/pip install -q --upgrade pip
	@echo "patchprop: installing patchprop (editable) and its tools: boto3, Powertools, pydantic, moto,"
	@echo "           pytest, ruff, mypy, cfn-lint, syft... (about a minute the first time)"
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@
	@echo "patchprop: $(VENV) is ready"

# Debian packages the local registry and image builds need; installed only where missing.
system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "patchprop: updating the apt package lists, to install:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  echo "patchprop: installing Debian packages:$$missing (registry, image builds)" && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null && \
	  echo "patchprop: installed:$$missing"; \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	@# ...and the CloudFormation it becomes (Fn::ForEach expanded, SAM translated), as deployed.
	$(BIN)/python scripts/sam_to_cfn.py .patchprop/cfn.json
	$(BIN)/cfn-lint .patchprop/cfn.json
	shellcheck buildspec/*.sh

# One mypy run per function: every handler module is called app.py.
typecheck: venv
	@# No incremental cache here: it has reported "no attribute" for a module it had just seen.
	$(BIN)/mypy --cache-dir=/dev/null --exclude 'local/patchprop_local/data/' layers/shared cli local scripts bench
	@for f in functions/*/app.py; do $(BIN)/mypy $$f || exit 1; done

unit: venv
	$(BIN)/pytest -q tests/unit

integration: venv system-deps
	$(BIN)/pytest -q tests/integration

bench: venv system-deps
	@for b in bench/*_bench.py; do [ -e "$$b" ] && $(BIN)/python $$b; done; true

# AWS SAM CLI lives in its own virtualenv (its boto3 pin clashes with moto's). The layer is
# built for python3.12, the functions' runtime: pyenv's, where the machine has one.
PY312 := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin))
sam-build:
	test -x .venv-sam/bin/sam || ($(PYTHON) -m venv .venv-sam && .venv-sam/bin/pip install -q aws-sam-cli)
	.venv-sam/bin/sam validate --lint
	PATH="$(if $(PY312),$(PY312):)$$PATH" .venv-sam/bin/sam build

clean:
	rm -rf $(VENV) .venv-sam .aws-sam .patchprop .pytest_cache .mypy_cache .ruff_cache
