# Developer and CI entry points. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

# Stamps inside the venv: deleting .venv forgets them too.
DEV_STAMP := $(VENV)/.aiopool-dev.stamp
BENCH_STAMP := $(VENV)/.aiopool-bench.stamp

# Only directories that exist and hold Python files: mypy fails on an empty one.
has_py = $(if $(shell find $(1) -name '*.py' -print -quit 2>/dev/null),$(1))
LINT_PATHS := aiopool tests $(call has_py,examples) $(call has_py,bench)
TYPED_PATHS := aiopool $(call has_py,examples)

.PHONY: venv test lint demo bench bench-app clean distclean

venv: $(DEV_STAMP)

$(DEV_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy --strict $(TYPED_PATHS)

# pytest finds (or starts) its database itself: see tests/conftest.py. The cluster
# tests need Galera's Debian packages: installed here when missing (a failure is
# reported, and those tests then say why they cannot run).
test: lint
	-$(BIN)/python -m aiopool.testing._cluster ensure-galera
	$(BIN)/pytest $(PYTEST_ARGS)

demo: venv
	$(BIN)/python -m aiopool.testing run -- $(BIN)/python examples/demo.py

$(BENCH_STAMP): pyproject.toml $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.app

# TechEmpower's database tests through FastAPI (uvicorn, uvloop, wrk; see docs/benchmark-app.md).
# Installs wrk with apt-get when missing and run as root; fills its own database, aiopool_bench.
bench-app: $(BENCH_STAMP)
	$(BIN)/python -m bench.app

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) \
		-prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
