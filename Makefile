# Two commands from a fresh clone: `make run` and `make test`. `make help` lists the rest.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.DEFAULT_GOAL := help
.PHONY: help install browser run test chaos mutate bench bench-scale kafka-start kafka-stop clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(VENV)/.installed-test ## Create .venv with the project and its test tools (for development)

# What the pipeline runs on, and nothing else: `make run` needs no test tools. Modules are compiled
# here, once: where PYTHONDONTWRITEBYTECODE is set, nothing compiled later would be kept.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test]"
	touch $@

run: $(VENV)/.installed ## Start Kafka, the router, dispatcher, results service and admin API; Ctrl-C stops all
	$(VENV)/bin/pipeline run

test: install browser ## Run every test against a real Kafka broker and embedded ClickHouse
	$(PY) -m pytest

chaos: install ## Only the chaos tests (make test runs them too): kills of every stage, the broker stopped for a minute
	$(PY) -m pytest -m "integration" tests/e2e/test_chaos.py

# The dashboard is tested in a real headless browser: Debian's chromium, installed once.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	  else sudo apt-get update -q && sudo apt-get install -y -q chromium; fi; } \
	  || echo "chromium could not be installed: the dashboard's browser test will be skipped"

# mutmut lives in its own directory: it needs a newer click than faust-streaming accepts (pyproject.toml).
MUTMUT := PYTHONPATH=$(VENV)/mutmut $(PY) -m mutmut

$(VENV)/mutmut/.installed: pyproject.toml
	rm -rf $(VENV)/mutmut
	$(PY) -m pip install -q --no-warn-conflicts --target $(VENV)/mutmut --group mutation
	touch $@

mutate: install $(VENV)/mutmut/.installed ## Mutation-test the pure modules against their unit tests; prints the score
	rm -rf mutants
	$(MUTMUT) run
	@$(MUTMUT) results | grep -v ': timeout$$' || true  # the survivors; a mutant stopped for looping was caught
	@$(MUTMUT) export-cicd-stats >/dev/null
	@$(PY) tests/mutation_score.py

bench: $(VENV)/.installed ## End-to-end deliveries/s and latency beside the raw HTTP client rate; publishing over HTTP beside the SDK
	$(PY) -m bench.pipeline
	$(PY) -m bench.http_publish

bench-scale: $(VENV)/.installed ## Ten thousand endpoints: creation rate, first-event latency, what the others notice
	$(PY) -m bench.scale

kafka-start: $(VENV)/.installed ## Start only the local Kafka broker (idempotent)
	$(VENV)/bin/pipeline kafka start

kafka-stop: $(VENV)/.installed ## Stop the local Kafka broker
	$(VENV)/bin/pipeline kafka stop

clean: kafka-stop ## Stop the broker and delete all local data (.data)
	rm -rf .data
