# Two commands do everything on a fresh machine:
#   make demo   install into .venv, then run the main job (see README)
#   make test   install into .venv, then run the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mixkit demo --out runs/demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests tools
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/mixkit bench ops --out runs/bench/ops.md

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
