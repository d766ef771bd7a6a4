# deit_plugin: the two commands of the README.
#   make demo   the DeiT student with and without the Fashion-MNIST teacher, print the table
#   make test   run the test suite
#   make demo-det  detection transfer: RetinaNet with the demo's student backbone vs random init
# Each creates .venv (tools/setup_env.sh) and installs Fashion-MNIST first when missing.
# Classification needs no compiled mmcv ops: `make env` (and `make demo`) install mmcv-lite, or
# keep mmcv with ops when .venv has it; detection and the test suite need the ops
# (`make env-det`: mmcv 2.1.0 built once per machine, its wheel cached). MMCV=lite|ops forces
# one flavour: `make env MMCV=lite` goes back to mmcv-lite.
PY := .venv/bin/python
.PHONY: env env-det data demo test clean-demo demo-det

env:
	@bash tools/setup_env.sh $(MMCV)

env-det:
	@bash tools/setup_env.sh ops

data:
	@bash tools/install_fashion_mnist.sh

# The published teacher (checkpoints/fashion_mnist/); TRAIN_TEACHER=1 trains it first.
# AMP=1: train in bfloat16 autocast on a CPU (float16 AMP on CUDA).
demo: env data
	$(PY) tools/run_demo.py $(if $(TRAIN_TEACHER),--train-teacher) $(if $(AMP),--amp)

test: env-det data lint
	$(PY) -m pytest -q --zoo-all tests

# flake8 + isort + yapf's work, done by ruff (settings: pyproject.toml [tool.ruff]); `make test` runs it
.PHONY: lint
lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean-demo:
	rm -rf work_dirs/demo data/fashion_mnist

# The paper-claims study v2 (docs/experiments/paper_claims.md): about 22 hours on 2 cores, not
# part of CI. Resumable; results are copied to docs/experiments/paper_claims_v2.
.PHONY: paper-claims
WORK_DIR ?= work_dirs/paper_claims_v2
paper-claims: env data
	$(PY) -m projects.paper_claims --work-dir $(WORK_DIR) --publish docs/experiments/paper_claims_v2

# Trains the main demo first when its student checkpoint is missing.
demo-det: env-det data
	$(PY) tools/run_det_demo.py

# speed of the plugin against the timm/official reference (tools/benchmark.py; ~4 min on 2 cores);
# with CUDA also the GPU rows: the real-size step of two ImageNet recipes (nothing without CUDA)
.PHONY: bench
bench: env
	$(PY) tools/benchmark.py --json work_dirs/benchmark/benchmark.json --markdown work_dirs/benchmark/benchmark.md
	$(PY) tools/benchmark.py recipe configs/deit_s_distill.py configs/deit_b_distill_384_ft.py \
		--if-cuda --device cuda --precision fp32 fp16 bf16 --batch 32 \
		--json work_dirs/benchmark/recipe_gpu.json --markdown work_dirs/benchmark/recipe_gpu.md
