PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo

.PHONY: install demo test bench lint clean

install: $(BIN)/mva

# torch is pinned to the CPU build that lies on disk here; pyproject keeps a range for users.
$(BIN)/mva: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	@if ! command -v chromium >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "chromium not installed: browser tests will be skipped"; fi
	touch $(BIN)/mva

demo: install
	$(BIN)/mva example classification --output $(DEMO)/classification --force
	cd $(DEMO)/classification && ../../$(BIN)/mva train config.yaml --output run --force

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_classification.py

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info
