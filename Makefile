# Two commands for a fresh machine with Python 3.11:
#   make demo   - run the example DAG end to end (local emulator, or OpenRouter if OPENROUTER_API_KEY is set)
#   make test   - lint, type-check, build the docs, check the built package and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_VENV ?= .venv-demo

.PHONY: demo test docs test-system-oldest test-distributed test-airflow-versions check-package bench install clean

install: $(VENV)/.installed

# Installed through uv (the same resolution as pip's from the same lines, in a fraction of the time).
$(VENV)/.installed: pyproject.toml emulator/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e "./emulator[render]" -e ".[test,distributed,docs]"
	touch $@

# The demo's own venv: only what it runs (the provider and the emulator; no test tools), through
# uv (about 30 s cold on 2 cores).
demo: $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/python scripts/demo.py

$(DEMO_VENV)/.installed: pyproject.toml emulator/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet uv
	$(DEMO_VENV)/bin/uv pip install --quiet --python $(DEMO_VENV)/bin/python -c constraints.txt -e "./emulator[render]" -e .
	touch $@

# Unit and dag.test() suites: three workers on two cores (many tests wait on subprocesses and the
# emulator), work-stealing so the long ones do not leave a worker idle at the end: 260 s instead of
# 358 s with two. System tests: two modules at a time, each with its own stacks; the longest
# (webhooks) first, so the other worker runs the rest meanwhile. The system suite on the oldest
# Airflow is `make test-system-oldest` (about 2 minutes; outside `make test` for the 25-minute CI
# budget: run it before a release, RELEASING.md).
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(MAKE) docs
	$(BIN)/python scripts/check_package.py
	$(BIN)/pytest -n 3 --dist worksteal --ignore=tests/system --ignore=tests/distributed
	$(BIN)/python scripts/airflow_versions.py
	$(BIN)/pytest tests/system/test_webhooks.py tests/system --ignore=tests/system/test_stack_smoke.py -n 2 --dist loadfile
	$(MAKE) test-distributed

test-system-oldest: install
	$(BIN)/python scripts/airflow_versions.py --system 3.0.6

# The documentation site, docs/ -> docs/_build/html (index.html). Every warning fails the build:
# a broken link or anchor, a missing image, an unresolved reference in a docstring. -E: a fresh
# environment each time, or a second run would pass without re-reading the pages that warned.
docs: install
	$(BIN)/sphinx-build -E -W --keep-going -n -q -b html docs docs/_build/html

# CeleryExecutor + PostgreSQL + Redis, 2 workers, 2 triggerers, kill -9 of each (tests/distributed).
# Needs the postgresql and redis-server Debian packages (.ci/run installs them).
test-distributed: install
	$(BIN)/pytest tests/distributed

# The Airflow-facing suites on Airflow 3.0, 3.1 and 3.2, each in its own venv under .venvs/
# (the project venv has the newest, 3.3). --all runs every non-system test there, --system the
# system suite (make test runs it on the newest and the oldest, 3.0.6).
test-airflow-versions: install
	$(BIN)/python scripts/airflow_versions.py

# Build the wheel and sdist, check them, install the wheel in a fresh venv (part of make test).
check-package: install
	$(BIN)/python scripts/check_package.py

# Benchmarks are not tests: they measure this machine and print tables (see benchmarks/README.md).
bench: install
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e "./emulator[render]" -e ".[test,distributed,bench]"
	$(BIN)/python benchmarks/dag_parse_cost.py
	$(BIN)/python benchmarks/completion_detection.py
	$(BIN)/python benchmarks/download.py
	$(BIN)/python benchmarks/triggerer_capacity.py
	$(BIN)/python benchmarks/worker_slot_time.py
	$(BIN)/python benchmarks/webhook_completion.py
	$(BIN)/python benchmarks/video_pages.py
	$(BIN)/python benchmarks/webhook_flood.py

clean:
	rm -rf $(VENV) $(DEMO_VENV) .venvs .demo build dist *.egg-info docs/_build
