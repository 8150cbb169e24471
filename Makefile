# mlc: the two commands a fresh machine needs.
#   make run    set up (virtualenv + install) and run the demo: compile ResNet-18, check it
#               against onnxruntime, show both latencies
#   make test   set up and run the test suite (the default, fast selection)
#   make test-all   also the slow tests;  make bench   the benchmark tables

PYTHON_BOOT ?= python3
VENV ?= .venv

ifdef VIRTUAL_ENV
  PY := python
  STAMP := $(VIRTUAL_ENV)/.mlc-installed
else
  PY := $(VENV)/bin/python
  STAMP := $(VENV)/.mlc-installed
endif

.PHONY: install run test test-all bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$$VIRTUAL_ENV" ] && [ ! -x "$(VENV)/bin/python" ]; then \
		echo "creating virtual environment $(VENV)"; $(PYTHON_BOOT) -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: install
	$(PY) -m mlc.demo

test: install
	$(PY) -m pytest

test-all: install
	$(PY) -m pytest -m ''

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf build *.egg-info .pytest_cache
