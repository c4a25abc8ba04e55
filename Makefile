# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
UV_VERSION := 0.13.9
# The policy check of deploy/k8s, in a venv of its own: checkov pins dozens of packages that would fight ours.
CHECKOV := $(TOOLS)/checkov/bin/checkov
CHECKOV_VERSION := 3.3.30

.PHONY: run test chaos env broker contracts lint bench clean postgres system-deps k8s-check

$(UV):
	@echo "==> installing uv $(UV_VERSION) into $(TOOLS)/ (first run only)"
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock shared/contracts/pyproject.toml
	@echo "==> creating the environment from uv.lock"
	@$(UV) sync --frozen --quiet
	@touch $@

env: $(VENV)/.synced

$(CHECKOV):
	@echo "==> installing checkov $(CHECKOV_VERSION) into $(TOOLS)/checkov/ (first run only)"
	@rm -rf $(TOOLS)/checkov && $(PYTHON) -m venv $(TOOLS)/checkov
	@$(TOOLS)/checkov/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)

# deploy/k8s rendered, validated against the Kubernetes schemas and checked by checkov (also part of `make test`).
k8s-check: env $(CHECKOV)
	@$(VENV)/bin/python -m pytest -q tests/deploy/test_k8s.py

run: env
	@$(VENV)/bin/python -m attune_cli.devrun

broker: env
	@$(VENV)/bin/python -m attune_runtime.tansu --port 9092

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { echo "==> starting PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }

# Debian packages the tests use: promtool/prometheus (rules, scraping) and chromium (the inbox browser test).
system-deps:
	@missing=""; command -v promtool >/dev/null || missing="$$missing prometheus"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	  if [ -n "$$missing" ]; then echo "==> installing from Debian's packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || echo "   (could not install$$missing; the tests that need them will say so)"; fi

# Lint first: a finding fails in seconds instead of after the 27-minute suite (CI runs `make test`).
test: lint postgres system-deps $(CHECKOV)
	@$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The long chaos run (20+ kill -9s, broker cuts, a PostgreSQL restart; ~10 min). `make test` runs a bounded one.
chaos: env
	@ATTUNE_CHAOS=long $(VENV)/bin/python -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

contracts: env
	@$(VENV)/bin/python -m attune_contracts.export shared/contracts

# ruff's rules and mypy --strict on the contracts and the shared runtime (both configured in pyproject.toml).
lint: env
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy

bench: env postgres
	@$(VENV)/bin/python bench/run_all.py $(BENCH)

clean:
	rm -rf $(VENV) $(TOOLS) data .pytest_cache
