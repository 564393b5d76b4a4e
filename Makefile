# Two commands: `make reproduce` (the whole paper at the embedded scale) and `make test`; `make publish`
# after a complete `make reproduce` refreshes the committed results (docs/publishing.md).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all
# `make report`: the profile whose results/<profile>/ it shows (default: params.yaml's `profile`)
PROFILE ?= $(shell sed -n 's/^profile:[[:space:]]*\([A-Za-z0-9_-]*\).*/\1/p' params.yaml)
REPORT  ?= results/$(PROFILE)/report.html
# the targets the report shows: the default target; add a study run outside it, e.g. "all crossbench"
REPORT_TARGETS ?=

.PHONY: setup reproduce crossbench report publish results-doc test test-fast lint format dag benchmark clean verify dvc-yaml

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

# the cross-paper benchmark's full grid (docs/crossbench.md): not in `make reproduce`, whose 2 hours it would
# exceed (that runs it on a smaller grid: crossbench_small); it reuses the models that run made (or makes them)
crossbench: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES) --profile profiles/default crossbench

# every study's tables and figures beside the paper's numbers, in one self-contained HTML file (after
# `make reproduce`; for another profile's outputs: `PROFILE=ci make report`)
report: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake $(REPORT_TARGETS) --config profile=$(PROFILE) --report $(REPORT)
	@echo "report: $(REPORT)"

# `make publish` (after a complete `make reproduce`): the run's provenance (RUN.json, RUN.md: its commit, date,
# machine, cores, wall time, each study's share; TDEC's summary/provenance.json), the report, the results page, then a check of what git
# will commit under results/$(PROFILE)/ (.gitignore lets exactly the published files through): complete,
# under 12 MB, no weights. Then: git add -A results/$(PROFILE) dvc.lock && git commit (docs/publishing.md)
# RUN_LOG=.snakemake/log/<run>.snakemake.log: the run to describe (default: the newest finished one)
RUN_LOG ?=
publish: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m unlearn_repro.publish provenance results/$(PROFILE) \
	  $(if $(RUN_LOG),--log $(RUN_LOG))
	@# the published TDEC summary's provenance.json, which `make verify` compares with: this run's
	@s=results/$(PROFILE)/tdec/summary; base=$$(ls -d results/$(PROFILE)/tdec/models/* 2>/dev/null | head -n 1); \
	if [ -n "$$base" ] && [ -f $$s/metrics.json ]; then echo "$$s/provenance.json: from $$base"; \
	  $(BIN)/python -m unlearn_repro.numerics provenance "$$base" $$s/metrics.json $$s/provenance.json; fi
	@# dvc.lock records that provenance.json too (else `dvc status` shows the TDEC summary changed)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc commit --force --quiet
	$(MAKE) --no-print-directory report PROFILE=$(PROFILE) REPORT=results/$(PROFILE)/report.html
	$(MAKE) --no-print-directory results-doc PROFILE=$(PROFILE)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m unlearn_repro.publish check results/$(PROFILE)

# the results page, generated from results/$(PROFILE)/ (a part of `make publish`)
results-doc: $(STAMP)
	$(BIN)/python -m unlearn_repro.report.results_doc results/$(PROFILE)

# the suite on TEST_WORKERS pytest-xdist workers (2: CI's two cores; `auto` takes one per core, 0 runs it in
# one process, as a plain `python -m pytest -q` does). --dist loadfile keeps a file's tests on one worker, so a
# module's fixture is built once: the integration module's whole `ci` DAG above all. --no-loadscope-reorder
# hands the files out in the order tests/conftest.py sorts them, the long ones first (docs/tests.md)
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(PYTEST)

test-fast: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(PYTEST) -m "not integration"

# the style gate (run by .ci/run): ruff's formatter and linter with the rules of pyproject.toml [tool.ruff],
# params.yaml in block style within 110 characters a line, then the workflow's own checks
LINT_PY := src tests benchmarks tools
lint: $(STAMP)
	$(BIN)/ruff format --check $(LINT_PY)
	$(BIN)/ruff check $(LINT_PY)
	$(BIN)/python tools/check_params_style.py params.yaml
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -n --quiet
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint

# `make format`: what `make lint` checks, applied (the formatter and ruff's safe fixes)
format: $(STAMP)
	$(BIN)/ruff format $(LINT_PY)
	$(BIN)/ruff check --fix $(LINT_PY)

# `make benchmark`: the speed guard (benchmarks/speed_guard.py): every target a ratio of timings taken side by
# side in one run, printed with PASS / FAIL and written to benchmarks/results/speed_guard.md; exits 1 on a FAIL
benchmark: $(STAMP)
	$(BIN)/python benchmarks/speed_guard.py

# `make verify`: the TDEC study rerun from scratch in a temp workspace (a copy of this checkout without its
# results: a fresh clone's committed state) and its summary compared with the published one, bit for bit
# where the pinned CPU path promises it, else within numerics.LOOSE_RTOL; every number that differs is
# printed and any difference fails. 7-16 min on 2 cores (docs/determinism.md); the workspace is kept on failure.
VERIFY_PUBLISHED := results/embedded/tdec/summary
verify: $(STAMP)
	@set -e; start=$$(date +%s); ws=$$(mktemp -d "$${TMPDIR:-/tmp}/unlearn-verify.XXXXXX"); \
	echo "[verify] rerunning TDEC (embedded) in $$ws/repo"; mkdir -p "$$ws/repo"; \
	git ls-files -z -co --exclude-standard | grep -zv -e '^results/' -e '^logs/' \
	  | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$$ws/repo"; \
	if [ -d ../shared ]; then ln -s "$$(cd ../shared && pwd)" "$$ws/shared"; fi; \
	export UNLEARN_GIT_COMMIT="$$(git rev-parse HEAD)$$(git status --porcelain -- src | grep -q . && echo +dirty)"; \
	( cd "$$ws/repo" && PYTHONPATH="$$ws/repo/src" PATH=$(abspath $(BIN)):$$PATH $(abspath $(BIN))/snakemake tdec \
	  --cores $(CORES) --profile profiles/default --config profile=embedded > "$$ws/snakemake.log" 2>&1 ) \
	  || { tail -n 30 "$$ws/snakemake.log"; echo "[verify] the rerun failed; log: $$ws/snakemake.log"; exit 1; }; \
	new="$$ws/repo/$(VERIFY_PUBLISHED)"; base=$$(ls -d "$$ws"/repo/results/embedded/tdec/models/* | head -n 1); \
	PYTHONPATH="$$ws/repo/src" $(abspath $(BIN))/python -m unlearn_repro.numerics provenance "$$base" "$$new/metrics.json" "$$new/provenance.json"; \
	rc=0; PYTHONPATH="$$ws/repo/src" $(abspath $(BIN))/python -m unlearn_repro.numerics verify $(VERIFY_PUBLISHED) "$$new" || rc=$$?; \
	echo "[verify] $$(( $$(date +%s) - start )) s"; \
	if [ $$rc -eq 0 ]; then rm -rf "$$ws"; else echo "[verify] kept $$ws for inspection"; fi; exit $$rc

clean:
	rm -rf results logs .snakemake mlflow.db mlruns

# dvc.yaml's study stages and plots, from the study declarations (src/unlearn_repro/studies/)
dvc-yaml: $(STAMP)
	$(BIN)/python -m unlearn_repro.dvc_yaml
