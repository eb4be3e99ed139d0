# `make demo` and `make test` work on a fresh clone: they create .venv and install what they need.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ltprobe-installed

.PHONY: install demo test test-fast clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh
	touch $(STAMP)

demo: install
	$(VENV)/bin/ltprobe run --out runs/demo

test: install
	$(PY) -m pytest -ra

# The unit tests alone (no vLLM engine, no training, no servers): seconds, for quick iteration.
test-fast: install
	$(PY) -m pytest -ra -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
