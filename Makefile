# The two commands of the README:  `make run`  (the main job)  and  `make test`.
# Both create the virtual environment on first use; everything else is in pyproject.toml.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test setup clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tbcm toy2d --out results/toy2d

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf results .pytest_cache
