"""Shared test setup: one torch thread per test process so `pytest -n 2` uses both cores without oversubscription,
and no stop request (Ctrl-C/SIGTERM handling, agents.pipeline.interrupt) carried from one test into the next."""

from collections.abc import Iterator

import pytest
import torch

from agents.pipeline import interrupt

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def no_stop_request() -> Iterator[None]:
    interrupt.reset()
    yield
    interrupt.reset()
