# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when missing
# and installs the project with its test extras first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DATA ?= ../shared/data/bacteria-divisualisation
OUT ?= demo-out

.PHONY: demo test check install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	OUT=$(OUT) DATA=$(DATA) VENV=$(VENV) bash scripts/demo.sh

# The checks CI enforces (pyproject.toml configures them), then the whole suite.
check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: check
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(OUT) trackdb.sqlite*
