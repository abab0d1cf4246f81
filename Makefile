# Two commands matter (README.md): `make demo` and `make test`; `make lint` runs ruff and mypy.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install data demo test test-slow bench lint

$(BIN)/lifelong: pyproject.toml requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.txt torch==2.13.0
	$(BIN)/pip install -q -c requirements.txt -e '.[dev]'
	$(BIN)/lifelong --version  # caches the command line's options (lifelong.catalog): later starts skip PyTorch
	touch $@

install: $(BIN)/lifelong

data:
	sh scripts/fashion-mnist.sh
	sh scripts/fortunes.sh || echo "fortunes is missing: split-fortunes will say how to install it"

demo: install data
	$(BIN)/lifelong run

test: install lint
	sh scripts/fashion-mnist.sh || echo "Fashion-MNIST is missing: the tests that need it are skipped"
	sh scripts/fortunes.sh || echo "fortunes is missing: the tests that need it are skipped"
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy

test-slow: install
	$(BIN)/python -m pytest -m slow

bench: install data
	$(BIN)/python benchmarks/overhead.py
