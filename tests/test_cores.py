"""Cores claimed per process (envs.cores) and the ale backend's thread pinning that depends on them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import envs.cores
from envs import make_env
from envs.atari import ale_threads
from envs.cores import allowed_cores, claim_cores, owned_cores, owning_cores, release_cores, run_owning_cores
from rlnorm.validation import ConfigError

# envs.cores loaded on its own: importing the envs package (gymnasium, ALE, torch) would take seconds
CLAIM_ONE = (
    "import importlib.util as u; s = u.spec_from_file_location('cores', {path!r}); m = u.module_from_spec(s); "
    "s.loader.exec_module(m); print(m.claim_cores(1))"
)


def _claim_in_other_process() -> str:
    code = CLAIM_ONE.format(path=str(Path(envs.cores.__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_claimed_cores_restrict_the_process_and_are_not_claimed_twice() -> None:
    everything = allowed_cores()
    with owning_cores(len(everything)) as cores:
        if cores is None:
            pytest.skip("another process on this machine holds a core right now")
        assert cores == everything and owned_cores() == cores
        assert sorted(os.sched_getaffinity(0)) == cores
        assert claim_cores(1) is None  # already owns cores
        assert _claim_in_other_process() == "None"  # all taken
    assert owned_cores() is None and sorted(os.sched_getaffinity(0)) == everything
    assert _claim_in_other_process() != "None"  # released (also when that process exits: flock)


def test_run_owning_cores_claims_only_for_the_call() -> None:
    got = run_owning_cores(1, owned_cores)
    assert got is None or (len(got) == 1 and got[0] in allowed_cores())
    assert owned_cores() is None
    assert run_owning_cores(0, owned_cores) is None


def test_ale_threads_pin_only_to_owned_cores() -> None:
    assert ale_threads(4, 0, "auto") == (0, -1)  # owns nothing: ale-py's default threads, unpinned
    assert ale_threads(4, 2, "none") == (2, -1)
    assert ale_threads(4, 0, 3) == (4, 3)
    cores = claim_cores(1)
    try:
        if cores is None:
            pytest.skip("another process on this machine holds every core right now")
        assert ale_threads(4, 0, "auto") == (1, cores[0])
        assert ale_threads(4, 2, "auto") == (2, -1)  # more threads than owned cores: not pinned
    finally:
        release_cores()
    with pytest.raises(ValueError, match="thread_affinity must be one of auto, none or a core number"):
        ale_threads(4, 0, "fast")


def test_make_env_thread_options() -> None:
    env = make_env("ALE/Pong-v5", 2, 0, thread_affinity="none", num_threads=1)
    assert (env.num_threads, env.thread_affinity_offset) == (1, -1)
    env.close()
    with pytest.raises(ConfigError, match="thread_affinity"):
        make_env("ALE/Pong-v5", 2, 0, thread_affinity=-2)
    with pytest.raises(ConfigError, match="thread_affinity: applies to backend='ale' only"):
        make_env("ALE/Pong-v5", 2, 0, backend="dummy", thread_affinity=0)
