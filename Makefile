# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.alignshift-env

.PHONY: env demo test test-fast lint bench reproduce clean-env

env: $(STAMP)

# Rebuilt when the recipe or the package metadata change; mmcv comes from the wheel cache.
$(STAMP): tools/setup_env.sh tools/install_mmcv.sh pyproject.toml
	PYTHON=$(PYTHON) VENV=$(VENV) bash tools/setup_env.sh
	touch $(STAMP)

demo: env
	$(PY) tools/demo.py

# The paper's two tables on the synthetic thickness benchmark (ARGS="--profile tiny" for a smoke run).
reproduce: env
	$(PY) tools/reproduce.py --synthetic $(ARGS)

lint: env
	$(VENV)/bin/ruff check .

# UTF-8 mode: a library that resets LC_CTYPE to "C" must not turn the docs' text into ASCII errors.
test: env lint
	PYTHONUTF8=1 $(PY) -m pytest -q tests

# The unit tests only: no end-to-end runs of the tools and the detector, no fresh virtual environments.
test-fast: env lint
	PYTHONUTF8=1 $(PY) -m pytest -q -m "not e2e and not packaging" tests

bench: env
	$(PY) benchmarks/bench_ops.py
	MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 $(PY) benchmarks/bench_ops.py  # heap kept
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_froc.py

clean-env:
	rm -rf $(VENV)
