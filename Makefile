# Developer and CI entry points. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

# Stamps inside the venv: deleting .venv forgets them too.
DEV_STAMP := $(VENV)/.aiopool-dev.stamp
BENCH_STAMP := $(VENV)/.aiopool-bench.stamp
DOCS_STAMP := $(VENV)/.aiopool-docs.stamp

# Only directories that exist and hold Python files: mypy fails on an empty one.
has_py = $(if $(shell find $(1) -name '*.py' -print -quit 2>/dev/null),$(1))
LINT_PATHS := aiopool tests $(call has_py,examples) $(call has_py,bench)
TYPED_PATHS := aiopool $(call has_py,examples)

.PHONY: venv test lint demo bench docs docs-serve clean distclean

venv: $(DEV_STAMP)

$(DEV_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# The distribution was first called "aiopool": drop that stale editable install.
	$(BIN)/python -m pip uninstall --quiet --disable-pip-version-check -y aiopool 2>/dev/null || true
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

$(DOCS_STAMP): pyproject.toml $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,docs]'
	touch $@

# The documentation site (mkdocs.yml, docs/) into site/; --strict: a broken link,
# a missing page or an API name mkdocstrings cannot find fails the build.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist site
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) \
		-prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
