# Two commands: `make reproduce` (the whole paper at the embedded scale) and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all
# `make report`: the profile whose results/<profile>/ it shows (default: params.yaml's `profile`)
PROFILE ?= $(shell sed -n 's/^profile:[[:space:]]*\([A-Za-z0-9_-]*\).*/\1/p' params.yaml)
REPORT  ?= results/$(PROFILE)/report.html

.PHONY: setup reproduce report test test-fast lint dag benchmark clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

reproduce: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES) --profile profiles/default
	@# record the finished state in dvc.lock so that `dvc repro` reruns only what changes
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc commit --force --quiet || echo "warning: dvc commit failed; run it by hand to record this run in dvc.lock"

# every study's tables and figures beside the paper's numbers, in one self-contained HTML file (after
# `make reproduce`; for another profile's outputs: `PROFILE=ci make report`)
report: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --config profile=$(PROFILE) --report $(REPORT)
	@echo "report: $(REPORT)"

test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q -m "not integration"

lint: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -n --quiet
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint

benchmark: $(STAMP)
	$(BIN)/python benchmarks/bench_fisher.py
	$(BIN)/python benchmarks/bench_second_order.py

clean:
	rm -rf results logs .snakemake mlflow.db mlruns
