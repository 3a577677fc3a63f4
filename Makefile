# The two commands of the README:  `make run`  (the main job)  and  `make test`.
# Both create the virtual environment on first use; everything else is in pyproject.toml.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run toy test setup pull clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# The whole pipeline on the embedded default (profiles/default is Snakemake's workflow profile).
run: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 snakemake --cores 2

# The known-answer 2-D distillation (TBCM vs sCM), about two minutes.
toy: $(STAMP)
	$(VENV)/bin/tbcm toy2d --out results/toy2d

# Every output from the DVC remote, with nothing recomputed; afterwards `snakemake` has nothing to do.
pull: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" DVC_NO_ANALYTICS=1 workflow/scripts/dvc-pull.sh

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf results .pytest_cache
