# rlnorm: every target installs what it needs first, so `make train` and `make test`
# work on a fresh clone.  GPU users: `make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"`
# (or any pip requirement for torch); the default is the CPU build.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= test,minatar
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/default.yaml
RUNS ?= runs
# the experiment folders `make study-aggregate` reads
AGGREGATE_RUNS ?= runs/study_minatar
PORT ?= 6006
# TensorBoard listens on this machine only. HOST=0.0.0.0 serves every run on every interface to anyone who can
# reach the port (TensorBoard has no login and no encryption): prefer `ssh -L 6006:127.0.0.1:6006 <host>`.
HOST ?= 127.0.0.1
# Extra arguments for `python -m agents train|sweep|study ...`, e.g. ARGS="total_timesteps=20000 seeds=[0]"
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install test test-all lint format docs-tables docs-check train train-atari train-recurrent train-pixelcnn pixelcnn-data \
        sweep compare tensorboard bench clean \
        study study-noise study-noise-trained study-batch-dependence study-minibatch study-minibatch-dqn study-recurrent study-pixelcnn study-exploration study-exploration-sizes study-offpolicy \
        study-minatar study-minatar-wn-parts study-minatar-calibration study-minatar-dqn study-atari-breakout study-aggregate study-aggregate-dqn study-random-scores study-head-norm study-head-norm-dqn

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

# lint first: CI runs `make test`, so a lint error fails it as a test would
test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

train: install
	$(PY) -m agents train $(CONFIG) $(ARGS)

train-atari: install
	$(PY) -m agents train configs/atari.yaml $(ARGS)
	$(PY) -m agents train configs/atari_dqn.yaml $(ARGS)

train-recurrent: install
	$(PY) -m agents train configs/recurrent.yaml $(ARGS)

pixelcnn-data: install
	$(PY) -m agents pixelcnn-data configs/pixelcnn.yaml $(ARGS)

train-pixelcnn: install
	$(PY) -m agents pixelcnn configs/pixelcnn.yaml $(ARGS)

sweep: install
	$(PY) -m agents sweep $(CONFIG) $(ARGS)

# The noise-sensitivity study behind docs/results.md (CPU-sized; finished runs are skipped on a re-run).
study: study-noise study-noise-trained study-batch-dependence study-minibatch study-minibatch-dqn study-recurrent study-pixelcnn study-exploration study-exploration-sizes

study-noise: install
	$(PY) -m agents train configs/study_noise.yaml $(ARGS)
	$(PY) -m agents study bn-modes runs/study_noise

study-noise-trained: install
	$(PY) -m agents train configs/study_noise_trained.yaml $(ARGS)

study-batch-dependence: study-noise
	$(PY) -m agents study batch-dependence runs/study_noise

study-minibatch: install
	$(PY) -m agents study minibatch configs/study_minibatch.yaml $(ARGS)

study-minibatch-dqn: install
	$(PY) -m agents study minibatch configs/study_minibatch_dqn.yaml $(ARGS)

study-recurrent: install
	$(PY) -m agents train configs/study_recurrent.yaml $(ARGS)
	$(PY) -m agents train configs/study_recurrent_flicker.yaml $(ARGS)

study-pixelcnn: install
	$(PY) -m agents study pixelcnn configs/study_pixelcnn.yaml $(ARGS)

# SAC critic norms and CrossQ (+WN) on MuJoCo Hopper-v5, CPU-sized (3 seeds x 4000 steps: early learning only;
# about 46 min on 2 loaded cores): needs the mujoco extra (not in `make study`)
study-offpolicy: install
	$(PY) -m pip install -q -e ".[mujoco]"
	$(PY) -m agents study offpolicy configs/study_offpolicy_hopper.yaml configs/study_offpolicy_hopper_crossq.yaml $(ARGS)

# MinAtar study (issue 19): PPO, 5 games x none/bn/wn(data init)/ln x 5 seeds, 250k steps: ~120 core-min idle
study-minatar: install
	$(PY) -m agents train configs/study_minatar.yaml $(ARGS)
	$(PY) -m agents study bn-modes runs/study_minatar

# WN's parts (wn-noinit, wn+mobn) on Breakout and SpaceInvaders, same runs folder (~21 core-min): after study-minatar,
# never beside it (they share run folders)
study-minatar-wn-parts: install
	$(PY) -m agents train configs/study_minatar_wn_parts.yaml $(ARGS)

# Plain-network calibration: PPO on MinAtar Breakout to 5M steps, 2 seeds (~29 min on 2 loaded cores), then
# gymnax-blines' PPO settings (gamma 0.999, 64 envs, lr 5e-4) for 2M steps, 1 seed
study-minatar-calibration: install
	$(PY) -m agents train configs/study_minatar_calibration.yaml $(ARGS)
	$(PY) -m agents train configs/study_minatar_calibration_gymnax.yaml $(ARGS)

# DQN arm of the MinAtar study: 5 games x 4 arms x 5 seeds, 100k steps (~430 core-min: resumes over sittings)
study-minatar-dqn: install
	$(PY) -m agents train configs/study_minatar_dqn.yaml $(ARGS)
	$(PY) -m agents study bn-modes runs/study_minatar_dqn

# PPO on real ALE Breakout, none/bn/wn/ln x 2 seeds x 500k steps: ~26 min a run on this CPU (~3.5 h), minutes on a GPU
study-atari-breakout: install
	$(PY) -m agents train configs/study_atari_breakout.yaml $(ARGS)

# Cross-game rliable report of the MinAtar grid; AGGREGATE_RUNS= its experiment folders
study-aggregate: install
	$(PY) -m agents study aggregate $(AGGREGATE_RUNS) --out reports/study_minatar_aggregate $(ARGS)

study-aggregate-dqn: install
	$(PY) -m agents study aggregate runs/study_minatar_dqn --out reports/study_minatar_dqn_aggregate $(ARGS)

# Re-measure the random-policy scores the aggregate normalizes with (~80 s)
study-random-scores: install
	$(PY) -m agents study aggregate --measure-random

# Normalized heads (head_norm none/wn/cosine) on MinAtar Freeway: PPO 15 runs x 100k (~9 CPU-min), DQN 6 runs x 20k
study-head-norm: install
	$(PY) -m agents study head-norm configs/study_head_norm.yaml $(ARGS)

study-head-norm-dqn: install
	$(PY) -m agents study head-norm configs/study_head_norm_dqn.yaml --heads none wn $(ARGS)

study-exploration: install
	$(PY) -m agents study exploration configs/study_exploration.yaml $(ARGS)

# Study 6c: Deep Sea sizes 6-24, DQN and PPO x plain / exact count / PixelCNN pseudo-count, density-norm arm at
# N = 8; 3 seeds (111 runs, ~85 min on 2 loaded cores); then DQN with the mixed Monte Carlo return (-mmc, 30 runs)
study-exploration-sizes: install
	$(PY) -m agents study exploration configs/study_exploration_sizes.yaml configs/study_exploration_sizes_ppo.yaml --sizes 6 8 10 12 16 20 --variants plain count $(ARGS)
	$(PY) -m agents study exploration configs/study_exploration_sizes.yaml configs/study_exploration_sizes_ppo.yaml --sizes 6 8 10 12 --variants pc-wn $(ARGS)
	$(PY) -m agents study exploration configs/study_exploration_sizes.yaml --sizes 8 --variants pc-none pc-pixel_ln pc-bn $(ARGS)
	$(PY) -m agents study exploration configs/study_exploration_sizes_ppo.yaml --sizes 24 --variants plain count $(ARGS)
	$(PY) -m agents study exploration configs/study_exploration_sizes.yaml --sizes 6 8 10 12 --variants pc-wn-mmc plain-mmc $(ARGS)
	$(PY) -m agents study exploration configs/study_exploration_sizes.yaml --sizes 6 8 --variants count-mmc $(ARGS)

# docs/*.md tables generated from the committed reports (report-docs markers); docs-check fails when one drifted
# or when a number of docs/results.md has no committed source
docs-tables: install
	$(PY) -m agents report-docs

docs-check: install
	$(PY) -m agents report-docs --check
	$(PY) -m pytest -q tests/test_results_doc.py

compare: install
	$(PY) -m agents compare $(RUNS) $(ARGS)

tensorboard: install
	$(PY) -m agents tb-means $(RUNS)
	@echo "comparison page (one colour per norm): $$($(PY) -c 'from agents.pipeline.tb_layout import tensorboard_url; print(tensorboard_url("$(HOST)", $(PORT), means=True))')"
	$(PY) -m tensorboard.main --logdir $(RUNS) --host $(HOST) --port $(PORT)

bench: install
	for f in benchmarks/[a-z]*.py; do m=$$(basename $$f .py); echo "== $$m"; $(PY) -m benchmarks.$$m || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
