"""Shared test setup: one torch thread per test process so `pytest -n 2` uses both cores without oversubscription."""

import torch

torch.set_num_threads(1)
