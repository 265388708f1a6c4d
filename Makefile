# Everything runs inside a git-ignored virtual environment, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One pin for torch: a CPU build on machines without CUDA, the CUDA build elsewhere.
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed-$(TORCH_VERSION)

.PHONY: install demo demo-figure test lint format pytest bench gpu-check clean

PIP := $(BIN)/python -m pip install --quiet

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) "torch==$(TORCH_VERSION)"
	$(PIP) -e ".[dev]"
	touch $(STAMP)

# Ray (the executor's Ray backend, sah tune) and Optuna (sah tune's optuna searcher) only for
# the tests: `make demo` does not wait for them.
RAY_STAMP := $(VENV)/.installed-ray-$(TORCH_VERSION)
$(RAY_STAMP): $(STAMP)
	$(PIP) -e ".[ray,tune-optuna]"
	touch $(RAY_STAMP)

# lm-eval (the lm-eval model `sah` and lm-eval's `hf` baseline) likewise only for the tests,
# which then must run (SAH_REQUIRE_LM_EVAL): elsewhere they skip without lm-eval.
LM_EVAL_STAMP := $(VENV)/.installed-lm-eval-$(TORCH_VERSION)
$(LM_EVAL_STAMP): $(STAMP)
	$(PIP) -e ".[lm-eval]"
	touch $(LM_EVAL_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sah demo

# The README's figure: the demo's quality against density (rerun after changing the demo).
demo-figure: $(STAMP)
	$(BIN)/sah -q demo --result-dir demo_results
	$(BIN)/sah -q report demo_results --plot --out demo_results/figures
	mkdir -p docs/figures
	cp demo_results/figures/quality_vs_density.png docs/figures/demo_quality_vs_density.png

lint: $(STAMP)
	$(BIN)/ruff check sparse_attention_hub tests bench
	$(BIN)/ruff format --check sparse_attention_hub tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: $(STAMP) $(RAY_STAMP) $(LM_EVAL_STAMP)
	SAH_REQUIRE_LM_EVAL=1 $(BIN)/python -m pytest -q

test: lint pytest

format: $(STAMP)
	$(BIN)/ruff format sparse_attention_hub tests bench
	$(BIN)/ruff check --fix sparse_attention_hub tests bench

bench: $(STAMP)
	for f in bench/*.py; do case $$f in bench/gpu_check*) continue;; esac; \
		echo "== $$f"; $(BIN)/python $$f || exit 1; done

# The checks that wait for a GPU, one JSON line each (ARGS="--device cpu": small, on the CPU).
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
