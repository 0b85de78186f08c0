# Two commands for a new user: `make demo` and `make test` (see README.md).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test test-slow test-fuzz lint bench bench-audit bench-transfer pictures install clean experiment-curation experiment-wild-retrain fmnist-cv transfer-pretrain transfer-proof

$(BIN)/python:
	$(shell command -v $(PY) >/dev/null 2>&1 && echo $(PY) || echo python3) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first and pinned: anything else would pull a CUDA build of several GB.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pixelforge demo

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench docs
	$(BIN)/python -m pytest

test-slow: $(TEST_STAMP)
	$(BIN)/python -m pytest -m slow -o addopts='-q'

# The readers fuzzed with many examples per case (tests/test_fuzz.py); the default suite runs a few.
FUZZ_EXAMPLES ?= 300
test-fuzz: $(TEST_STAMP)
	PIXELFORGE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -m fuzz -o addopts='-q' tests/test_fuzz.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench docs

bench: $(TEST_STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.decode

# The audit evidence harness: defects injected into the shared datasets, pixelforge vs cleanvision and
# cleanlab in one run (bench/results/audit.md). About half an hour on 2 cores with these settings.
bench-audit: $(TEST_STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.audit --images 3000 --seeds 0

# The README's pictures, from the embedded sample (about a minute).
pictures: $(STAMP)
	$(BIN)/python docs/make_pictures.py

clean:
	rm -rf $(VENV) build *.egg-info

# The data-curation experiment on MNIST (< 30 min on 2 cores) and the Fashion-MNIST wild-test-and-retrain.
DATASETS ?= ../shared/datasets
EXTRACTED ?= /tmp/ds
$(EXTRACTED)/%/train:
	mkdir -p $(EXTRACTED) && tar -xzf $(DATASETS)/$*.tar.gz -C $(EXTRACTED)

experiment-curation: $(STAMP) $(EXTRACTED)/mnist/train
	$(BIN)/pixelforge experiment curation $(EXTRACTED)/mnist --out runs/experiment-curation

experiment-wild-retrain: $(STAMP) $(EXTRACTED)/fashion-mnist/train
	$(BIN)/pixelforge experiment wild-retrain $(EXTRACTED)/fashion-mnist --model fmnist_baseline \
		--out runs/experiment-wild-retrain

# The Fashion-MNIST baseline protocol (5 folds, shuffled, seed 1, 10 epochs, batch 32, SGD 0.01 / 0.9):
# mean accuracy ≥ 90.5%, learning curves and a box plot in runs/fmnist-cv. Long on 2 cores.
fmnist-cv: $(STAMP) $(EXTRACTED)/fashion-mnist/train
	$(BIN)/pixelforge cv $(EXTRACTED)/fashion-mnist --model fmnist_baseline --folds 5 --seed 1 --epochs 10 \
		--batch-size 32 --optimizer sgd --lr 0.01 --momentum 0.9 --out runs/fmnist-cv

# Transfer learning, offline: pre-train ResNet-18 on CIFAR-10 here (about 25 min on 2 cores with bf16),
# then fine-tune on clothing5 against the same architecture from scratch (bench/results/transfer_proof.md).
transfer-pretrain: $(STAMP) $(EXTRACTED)/cifar10/train
	$(BIN)/pixelforge train $(EXTRACTED)/cifar10 --model resnet18 --size 64 --standardize channel --precision bf16 \
		--epochs 4 --batch-size 64 --lr 0.05 --schedule cosine --weight-decay 5e-4 \
		--augment "width_shift_range=0.1,height_shift_range=0.1,horizontal_flip" --out runs/cifar-resnet18

transfer-proof: transfer-pretrain
	$(BIN)/python -m bench.transfer_proof --pretrained runs/cifar-resnet18 --size 64 --epochs 30 --seeds 0 1

bench-transfer: $(STAMP)
	$(BIN)/python -m bench.transfer --size 224 --rounds 2
