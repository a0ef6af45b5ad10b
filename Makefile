# Developer and CI entry points. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

# Stamps inside the venv: deleting .venv forgets them too.
DEV_STAMP := $(VENV)/.aiopool-dev.stamp
BENCH_STAMP := $(VENV)/.aiopool-bench.stamp
DOCS_STAMP := $(VENV)/.aiopool-docs.stamp
# aiopool.sqlalchemy leans on SQLAlchemy internals: its tests also run on the
# other supported minor version (the venv has the newest), installed on its own
# into a directory that shadows the venv's copy through PYTHONPATH.
SA_OTHER_SPEC ?= sqlalchemy[asyncio]>=2.0.16,<2.1
SA_OTHER_PREFIX ?= 2.0.
SA_OTHER_DIR := $(VENV)/sqlalchemy-other
SA_OTHER_STAMP := $(SA_OTHER_DIR)/.stamp
SA_TESTS := tests/test_sqlalchemy.py tests/test_sqlalchemy_app.py tests/test_sqlalchemy_docs.py

# Only directories that exist and hold Python files: mypy fails on an empty one.
has_py = $(if $(shell find $(1) -name '*.py' -print -quit 2>/dev/null),$(1))
LINT_PATHS := aiopool tests hatch_build.py $(call has_py,examples) $(call has_py,bench)
TYPED_PATHS := aiopool $(call has_py,examples)

.PHONY: venv compiled compiled-for test test-sqlalchemy-versions test-pythons lint demo bench bench-app docs docs-serve clean distclean

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

# The compiled build: a wheel built with pyproject.toml's mypyc hook on, unpacked
# here (without its dist-info: the editable install stays the one registered).
# Rebuilt when a module changes, so it never runs stale code.
COMPILED := build/compiled
COMPILED_STAMP := $(COMPILED)/.stamp
# The compiled build first on the path. `python -m` puts the working directory
# (and its pure-Python aiopool/) ahead of it: bench runs with -P, which leaves it
# out (its app server inherits the flag), and the editable install still finds
# bench/. pytest's own path needs nothing.
WITH_COMPILED := PYTHONPATH=$(CURDIR)/$(COMPILED)
PACKAGE_SOURCES := $(shell find aiopool -name '*.py' -o -name '*.pyx')

compiled: $(COMPILED_STAMP)

# Built from a copy: mypyc leaves its extension modules beside the sources, where
# they would shadow every later edit of those modules.
$(COMPILED_STAMP): pyproject.toml hatch_build.py $(PACKAGE_SOURCES) $(DEV_STAMP)
	rm -rf $(COMPILED) build/wheel build/src
	mkdir -p build/src
	tar -cf - --exclude=__pycache__ --exclude='*.so' pyproject.toml hatch_build.py README.md LICENSE aiopool \
		| tar -xf - -C build/src
	HATCH_BUILD_HOOKS_ENABLE=1 $(BIN)/python -m pip wheel --quiet --disable-pip-version-check \
		--no-deps -w build/wheel ./build/src
	$(BIN)/python -m zipfile -e build/wheel/*.whl $(COMPILED)
	rm -rf $(COMPILED)/*.dist-info
	touch $@

# pytest finds (or starts) its database itself: see tests/conftest.py. The cluster
# tests need Galera's Debian packages: installed here when missing (a failure is
# reported, and those tests then say why they cannot run). The whole suite runs
# on the compiled build, and the core suite again on the pure-Python modules (the
# fallback, and what an install without the hook gets); tests/test_build.py fails
# if either run has the other build.
test: lint $(COMPILED_STAMP)
	-$(BIN)/python -m aiopool.testing._cluster ensure-galera
	$(MAKE) test-sqlalchemy-versions
	AIOPOOL_EXPECT_BUILD=compiled $(WITH_COMPILED) $(BIN)/pytest $(PYTEST_ARGS)
	AIOPOOL_EXPECT_BUILD=pure $(BIN)/pytest $(CORE_TESTS) -q -p no:cacheprovider

$(SA_OTHER_STAMP): pyproject.toml $(DEV_STAMP)
	rm -rf $(SA_OTHER_DIR)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--target $(SA_OTHER_DIR) '$(SA_OTHER_SPEC)'
	touch $@

# The SQLAlchemy tests again, on SQLAlchemy $(SA_OTHER_PREFIX)x (one event loop: the
# main run covers both).
test-sqlalchemy-versions: $(SA_OTHER_STAMP)
	PYTHONPATH=$(SA_OTHER_DIR) $(BIN)/python -c \
		"import sqlalchemy as s; assert s.__version__.startswith('$(SA_OTHER_PREFIX)'), s.__version__; print('SQLAlchemy', s.__version__)"
	PYTHONPATH=$(SA_OTHER_DIR) $(BIN)/pytest $(SA_TESTS) --loop asyncio -p no:cacheprovider

# The other supported Pythons run the pool's core suite (unit, property, real
# server, faults of the kind a pool must survive) in a venv each, on both builds,
# the four runs side by side (see .ci/other-pythons). Found in pyenv's versions or
# on PATH; missing ones fail under CI=true and are skipped otherwise.
OTHER_PYTHONS ?= 3.12 3.13
CORE_TESTS := tests/test_ledger.py tests/test_deadlines.py tests/test_pool_unit.py tests/test_loans.py tests/test_health_unit.py \
	tests/test_events.py tests/test_config.py tests/test_pool_real.py \
	tests/test_kind_to_server.py tests/test_health_real.py tests/test_loops.py tests/test_imports.py \
	tests/test_cancel_warnings.py tests/test_exception_state.py tests/test_cancel_sweep.py \
	tests/test_cancel_sweep_real.py tests/test_maintenance_unit.py tests/test_kill_cancelled.py \
	tests/test_return_state.py tests/test_build.py tests/test_wakeups.py

test-pythons:
	bash .ci/other-pythons "$(OTHER_PYTHONS)" "$(CORE_TESTS)"

# The compiled build for another Python (test-pythons): the wheel a user of that
# Python gets, unpacked into $(OUT).
compiled-for:
	rm -rf $(OUT) $(OUT).wheel $(OUT).src
	mkdir -p $(OUT).src
	tar -cf - --exclude=__pycache__ --exclude='*.so' pyproject.toml hatch_build.py README.md LICENSE aiopool \
		| tar -xf - -C $(OUT).src
	HATCH_BUILD_HOOKS_ENABLE=1 $(PY) -m pip wheel --quiet --disable-pip-version-check \
		--no-deps -w $(OUT).wheel ./$(OUT).src
	$(PY) -m zipfile -e $(OUT).wheel/*.whl $(OUT)
	rm -rf $(OUT)/*.dist-info $(OUT).wheel $(OUT).src

demo: venv
	$(BIN)/python -m aiopool.testing run -- $(BIN)/python examples/demo.py

$(BENCH_STAMP): pyproject.toml $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $@

# Both measure the compiled build (the report says which build it measured).
bench: $(BENCH_STAMP) $(COMPILED_STAMP)
	$(WITH_COMPILED) $(BIN)/python -P -m bench
	$(WITH_COMPILED) $(BIN)/python -P -m bench.app

# TechEmpower's database tests through FastAPI (uvicorn, uvloop, wrk; see docs/benchmark-app.md).
# Installs wrk with apt-get when missing and run as root; fills its own database, aiopool_bench.
bench-app: $(BENCH_STAMP) $(COMPILED_STAMP)
	$(WITH_COMPILED) $(BIN)/python -P -m bench.app

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
	rm -rf $(VENV) .venv-3.*
