# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint typecheck imports unit reliability reliability-long soak bench notebooks clean

$(STAMP): pyproject.toml examples/shortest_first/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# The example third-party policy, installed as a user would (its entry point registers it).
	$(BIN)/python -m pip install -q -e examples/shortest_first
	touch $@

setup: $(STAMP)

demo: $(STAMP)  ## the embedded demo: fair vs plain Celery, no services needed
	$(BIN)/fairsched demo

notebooks: $(STAMP)  ## open the analysis notebooks in JupyterLab (installed on first use)
	$(BIN)/python -m pip install -q jupyterlab
	$(BIN)/jupyter lab notebooks/

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy policies simulator fairsched examples/shortest_first/fairsched_shortest_first

imports: $(STAMP)
	$(BIN)/lint-imports

test: lint typecheck imports  ## everything CI runs: lint, types, layering, all tests, coverage
	# coverage starts before pytest: pytest loads our plugin (fairsched.testing.plugin, which
	# imports fairsched and policies) before a pytest plugin such as pytest-cov could start measuring.
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest --timeout=900 --durations=25 $(PYTEST_ARGS)
	$(BIN)/coverage report
	$(BIN)/coverage report --include='policies/*' --fail-under=95

unit: $(STAMP)  ## the fast part: no network
	$(BIN)/pytest tests/unit tests/property -q $(PYTEST_ARGS)

reliability: $(STAMP)  ## the fault tests (also part of `make test`), figures printed
	$(BIN)/pytest tests/reliability -s -q $(PYTEST_ARGS)

reliability-long: $(STAMP)  ## the fault tests with their long variants (5,000 tasks, many kills)
	FAIRSCHED_LONG=1 $(BIN)/pytest tests/reliability -s -q $(PYTEST_ARGS)

soak: $(STAMP)  ## a steady mixed load for 5 minutes: throughput, memory, p99 wait over time
	$(BIN)/python benchmarks/soak.py

bench: $(STAMP)
	$(BIN)/python benchmarks/policies.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
