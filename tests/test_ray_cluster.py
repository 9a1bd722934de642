"""A sweep on a real two-node Ray cluster, submitted the way a user with a cluster does it.

Each test starts a head node and a worker node (with its own resource label) on this machine, runs
``python -m agents sweep CONFIG --backend ray`` in a subprocess with ``RAY_ADDRESS`` set, and stops both nodes
at the end, even on failure. The nodes listen on 127.0.0.1 only (see :func:`_start_node`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from agents.config import load_config
from agents.pipeline.checkpoints import checkpoint_steps
from agents.pipeline.progress import read_progress
from agents.pipeline.runs import RunSpec, grid
from agents.pipeline.train import train_run

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
WORKER_LABEL = "rlnorm_test_worker"
# `ray start` that keeps 127.0.0.1 as the node address: Ray's CLI would swap it for the network address on
# Linux, and then bind its servers to every interface
RAY_START = (
    "import sys, ray._private.services as services; services.resolve_ip_for_localhost = lambda host: host; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"
)
BASE_ENV = {
    **os.environ,
    "RAY_USAGE_STATS_ENABLED": "0",
    # token authentication, with a token of this test session (not the user's ~/.ray/auth_token)
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(32),
    "OMP_NUM_THREADS": "1",
    # a dead node is noticed in ~2 s instead of ~30 s
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
# a driver on this machine talks to a loopback cluster from 127.0.0.1 too (the switch Ray uses on macOS)
DRIVER_ENV = {**BASE_ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
NODES_SCRIPT = """
import json, sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
deadline = time.monotonic() + 180
while len([n for n in ray.nodes() if n["Alive"]]) < int(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.2)
print(json.dumps([{"id": n["NodeID"], "alive": n["Alive"], "resources": n["Resources"]} for n in ray.nodes()]))
"""


@dataclass
class Cluster:
    address: str
    head_id: str
    worker_id: str
    worker: subprocess.Popen
    tmp: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_node(args: list[str], tmp: Path, name: str, env: dict[str, str]) -> subprocess.Popen:
    log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - open for the node's lifetime
    # its own session: the node's processes can be stopped (or killed) as one group
    command = [sys.executable, "-c", RAY_START, "start", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    command += ["--block", "--num-cpus=1", "--object-store-memory=100000000", f"--temp-dir={tmp}", *args]
    return subprocess.Popen(
        command,
        cwd=tmp,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _node_processes(node: subprocess.Popen) -> list[int]:
    """The pids of the node's processes: ``ray start``, the raylet and its helpers, and the task workers, which
    Ray starts in sessions of their own (so they are not in the node's process group). Linux ``/proc``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))  # field 4: the parent pid
    found, todo = [], [node.pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _stop_node(node: subprocess.Popen, hard: bool = False) -> None:
    """Stop a node: ``hard`` kills every process of it at once, as when its machine dies; otherwise SIGTERM,
    and whatever is left after 3 s (Ray's own shutdown can take 10 s) is killed."""
    pids = _node_processes(node)
    if not hard:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.wait(timeout=3)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    node.wait(timeout=10)


def _nodes(address: str, n_alive: int) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-c", NODES_SCRIPT, address, str(n_alive)],
        env=DRIVER_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # short path: Ray's unix sockets live under the temp dir and their paths are limited to ~107 bytes
    tmp = Path(tempfile.mkdtemp(prefix="rlray-", dir="/tmp"))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    nodes = []
    try:
        head_args = [
            "--head",
            f"--port={port}",
            f"--ray-client-server-port={_free_port()}",
            "--include-dashboard=false",
        ]
        nodes.append(_start_node(head_args, tmp, "head", BASE_ENV))
        deadline = time.monotonic() + 180  # minutes, not seconds, on a loaded CI machine
        while True:
            assert nodes[0].poll() is None, (tmp / "head.log").read_text(errors="replace")[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the head node did not start within 180 s"
                time.sleep(0.2)
        worker_args = [f"--address={address}", "--resources", json.dumps({WORKER_LABEL: 1})]
        nodes.append(_start_node(worker_args, tmp, "worker", BASE_ENV))
        alive = [n for n in _nodes(address, 2) if n["alive"]]
        assert len(alive) == 2, alive
        (worker_id,) = [n["id"] for n in alive if WORKER_LABEL in n["resources"]]
        (head_id,) = [n["id"] for n in alive if n["id"] != worker_id]
        yield Cluster(address, head_id, worker_id, nodes[1], tmp)
    finally:
        for node in reversed(nodes):
            _stop_node(node)
        shutil.rmtree(tmp, ignore_errors=True)


def _sweep(cluster: Cluster, overrides: list[str]) -> subprocess.Popen:
    """``python -m agents sweep configs/smoke.yaml ... --backend ray`` against the cluster, as a user runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "agents", "sweep", str(SMOKE), *overrides, "--backend", "ray", "--no-compare"],
        cwd=ROOT,
        env={**DRIVER_ENV, "RAY_ADDRESS": cluster.address},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _layout(run_dir: Path) -> set[str]:
    """A run folder's files, with the names that differ between two runs (event files) generalized."""
    names = set()
    for path in run_dir.rglob("*"):
        if path.is_file():
            rel = str(path.relative_to(run_dir))
            names.add(rel.split("events.out.tfevents.")[0] + "events.out.tfevents.*" if "tfevents" in rel else rel)
    return names


def _event_steps(run_dir: Path, tag: str) -> list[int]:
    steps = []
    for path in sorted(run_dir.rglob("events.out.tfevents.*")):
        steps += [e.step for e in EventFileLoader(str(path)).Load() for v in e.summary.value if v.tag == tag]
    return sorted(steps)


def _final(spec: RunSpec) -> dict:
    return json.loads((spec.run_dir / "final.json").read_text())


def test_sweep_runs_on_both_nodes_and_writes_what_the_local_backend_writes(cluster: Cluster, tmp_path: Path) -> None:
    overrides = [
        f"runs_dir={tmp_path / 'runs'}",
        "seeds=[0, 1]",
        "total_timesteps=1024",
        "checkpoint_freq=512",
        "eval.freq=0",
        "eval.n_episodes=2",
        "diagnostics.freq=0",
    ]
    proc = _sweep(cluster, overrides)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-3000:]

    specs = grid(load_config(SMOKE, overrides))
    assert len(specs) == 4
    nodes = {_final(spec)["executed_on"]["ray_node_id"] for spec in specs}
    assert nodes == {cluster.head_id, cluster.worker_id}, out[-3000:]

    # the same run trained in this process (no Ray) sets the reference layout of a run folder
    local = load_config(SMOKE, [*overrides, f"runs_dir={tmp_path / 'local'}"])
    reference = grid(local)[0]
    assert train_run(reference, progress_bar=False).status == "finished"
    expected = _layout(reference.run_dir)
    assert any("tfevents" in name for name in expected) and "final_model.zip" in expected
    for spec in specs:
        assert _layout(spec.run_dir) == expected, spec.run_dir
        assert _event_steps(spec.run_dir, "time/fps") == [512, 1024]


def test_sweep_survives_a_node_failure_and_a_failing_run(cluster: Cluster, tmp_path: Path) -> None:
    total, every = 6144, 512
    overrides = [
        f"runs_dir={tmp_path / 'runs'}",
        "seeds=[0, 1]",
        f"total_timesteps={total}",
        f"checkpoint_freq={every}",
        "eval.freq=0",
        "eval.n_episodes=2",
        "diagnostics.freq=0",
    ]
    specs = grid(load_config(SMOKE, overrides))
    # one run cannot save its checkpoints (a file where its checkpoint folder goes): it raises mid-training
    broken = specs[-1]
    broken.run_dir.mkdir(parents=True)
    (broken.run_dir / "checkpoints").write_text("not a folder")

    proc = _sweep(cluster, overrides)
    victim, victim_steps = None, 0
    try:
        deadline = time.monotonic() + 180
        while victim is None:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "no run with a checkpoint on the worker node within 180 s"
            for spec in specs[:-1]:
                progress = read_progress(spec.run_dir) or {}
                saved = checkpoint_steps(spec.run_dir) or 0
                if progress.get("ray_node_id") == cluster.worker_id and 2 * every <= saved < total - 2 * every:
                    victim, victim_steps = spec, saved
            time.sleep(0.1)
        _stop_node(cluster.worker, hard=True)  # the node dies with its runs in flight
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-3000:]  # 1: some run failed (the broken one)

    assert "failed" in out and str(broken.run_dir) in out
    assert not (broken.run_dir / "final.json").exists()
    for spec in specs[:-1]:
        final = _final(spec)
        assert final["num_timesteps"] == total, spec.run_dir
        # every logged step once, none missing, across the attempts' event files
        assert _event_steps(spec.run_dir, "time/fps") == list(range(every, total + 1, every))
        leftovers = [p for p in spec.run_dir.rglob(".*") if p.is_file() or p.is_dir()]
        assert not leftovers, f"half-written files left: {leftovers}"
    retried = _final(victim)
    assert retried["executed_on"]["ray_node_id"] == cluster.head_id
    assert retried["resumed_from"] is not None and retried["resumed_from"] >= victim_steps
