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
	$(BIN)/pip install -q -e ".[test,all]"
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "chromium not installed: browser tests will be skipped"; fi
	touch $(BIN)/mva

demo: install
	$(BIN)/mva example classification --output $(DEMO)/classification --force
	$(BIN)/mva train $(DEMO)/classification/config.yaml --output $(DEMO)/classification-run --force
	$(BIN)/mva example calorimeter --output $(DEMO)/calorimeter --events 20000 --force
	$(BIN)/mva train $(DEMO)/calorimeter/config.yaml --output $(DEMO)/calorimeter-run --force
	@echo "reports: $(DEMO)/classification-run/report.html $(DEMO)/calorimeter-run/report.html"

test: install
	$(BIN)/ruff check mva tests benchmarks examples
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: install
	$(BIN)/python benchmarks/bench_classification.py
	$(BIN)/python benchmarks/bench_calorimeter.py

lint: install
	$(BIN)/ruff check mva tests benchmarks examples

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info
