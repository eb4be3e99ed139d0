# `make demo` and `make test` work on a fresh clone: they create .venv and install what they need.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ltprobe-installed
TEST_STAMP := $(VENV)/.ltprobe-test-installed

.PHONY: install demo test test-fast clean

# What running needs (vLLM for this machine included); `make test` adds the test extras.
install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	VENV=$(VENV) bash scripts/install.sh test,notebooks
	touch $(TEST_STAMP)

demo: install
	$(VENV)/bin/ltprobe run --out runs/demo

test: $(TEST_STAMP)
	$(PY) -m pytest -ra

# The unit tests alone (no vLLM engine, no training, no servers): seconds, for quick iteration.
test-fast: $(TEST_STAMP)
	$(PY) -m pytest -ra -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
