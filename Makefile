# The README's two commands are `make demo` and `make test`; both install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup system-deps venv test test-all demo lint bench clean

setup: system-deps venv

system-deps:
	@bash .ci/install-system-deps.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

test: setup
	$(PY) -m ruff check balrog_runner tests benchmarks aux
	$(PY) -m pytest

test-all: setup
	$(PY) -m pytest -m ''

demo: setup
	$(VENV)/bin/balrog-demo

# Speed and memory figures (each prints a table; several minutes in all on 2 cores).
bench: setup
	$(PY) benchmarks/positions.py
	$(PY) benchmarks/inject.py --size 4096 --nobj 300
	$(PY) benchmarks/db.py
	$(PY) benchmarks/tile.py
	$(PY) benchmarks/measure_cost.py --size 2048 --ngal 300

lint: venv
	$(PY) -m ruff check balrog_runner tests benchmarks aux

clean:
	rm -rf $(VENV) demo-output build *.egg-info
