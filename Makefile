# The README's two commands are `make demo` and `make test`; both install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup system-deps demo-deps venv venv-demo test test-all demo demo-se lint bench clean

setup: system-deps venv

system-deps:
	@bash .ci/install-system-deps.sh

# the demo's own needs only: no SLURM, munge, PostgreSQL, MPI (HPC login nodes cannot apt-get)
demo-deps:
	@bash .ci/install-system-deps.sh .ci/apt-demo.txt

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-base

venv-demo: $(VENV)/.installed-base

$(VENV)/.installed-base: pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

test: setup
	$(PY) -m ruff check balrog_runner tests benchmarks aux
	$(PY) -m pytest

test-all: setup
	$(PY) -m pytest -m ''

demo: demo-deps venv-demo
	$(VENV)/bin/balrog-demo

# the same chain in single-epoch mode, beside coadd mode on the same positions (README: Coadd or single-epoch injection)
demo-se: demo-deps venv-demo
	$(VENV)/bin/balrog-demo --single-epoch

# Speed and memory figures (each prints a table; several minutes in all on 2 cores).
bench: setup
	$(PY) benchmarks/positions.py
	$(PY) benchmarks/preflight.py --tiles 1000
	$(PY) benchmarks/inject.py --size 4096 --nobj 300
	$(PY) benchmarks/db.py
	$(PY) benchmarks/tile.py
	$(PY) benchmarks/measure_cost.py --size 2048 --ngal 300
	$(PY) benchmarks/full_tile.py --size 2048
	$(PY) benchmarks/mask_lookup.py --size 2048
	$(PY) benchmarks/sersic_cache.py
	$(PY) benchmarks/single_epoch.py --size 2048 --exposures 2 4
	$(PY) benchmarks/recoadd_scaling.py --size 2048 --exposures 1 2 4 \
	    --se-dir /tmp/bench-cache/single-epoch/2048-2048x4096/archive/DES2359+0001/se

lint: venv
	$(PY) -m ruff check balrog_runner tests benchmarks aux

clean:
	rm -rf $(VENV) demo-output build *.egg-info
