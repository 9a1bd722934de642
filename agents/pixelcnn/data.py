"""Collect frames with the project's own envs into the PixelCNN dataset (an ``.npz`` under ``data/``).

``python -m agents.pixelcnn.data configs/pixelcnn.yaml [key=value ...]``

Frames come from ``envs.make_env`` driven by a random policy and/or trained SB3 models, are encoded by
:mod:`rlnorm.pixelcnn.frames` (Atari: newest frame at 42x42, 3 bits; MinAtar: packed binary channels) and
saved as ``train`` / ``test`` ``uint8`` arrays ``(N, 1, H, W)`` with ``levels``, ``encoding``, ``env_id`` and per-frame
``train_policy`` / ``test_policy`` indices into ``policies``. The test frames come from envs seeded apart
from the training ones, so no test frame is a near copy of a training neighbour by construction.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from agents.pixelcnn.config import DataConfig, load_pixelcnn_config
from rlnorm.pixelcnn.frames import BinaryFrameEncoder, GreyFrameEncoder, frame_encoder_for
from rlnorm.validation import ConfigError

TEST_SEED_OFFSET = 10_000

Policy = Callable[[np.ndarray], np.ndarray]


def load_policy(spec: str, env: VecEnv, seed: int) -> Policy:
    """``obs -> actions`` for a data-collection policy spec.

    :param spec: ``"random"`` or ``"<ALGO>:<model.zip>"`` (a model trained by ``agents.pipeline.train``)
    :param env: the env the policy acts in
    :param seed: seed of the random policy
    """
    if spec == "random":
        rng = np.random.default_rng(seed)
        n_actions = env.action_space.n
        return lambda obs: rng.integers(0, n_actions, size=len(obs))
    import agents  # noqa: F401  (registers the project's policy aliases that saved models refer to)
    from agents.policies.algos import algo_class

    algo, _, path = spec.partition(":")
    if not Path(path).is_file():
        raise FileNotFoundError(f"data.policies: trained model {path!r} not found (spec {spec!r})")
    model = algo_class(algo).load(path, device="cpu")
    return lambda obs: model.predict(obs, deterministic=False)[0]


def collect_frames(config: DataConfig, policy_spec: str, n_frames: int, seed: int) -> np.ndarray:
    """Run ``policy_spec`` in ``config.n_envs`` envs seeded from ``seed`` until ``n_frames`` frames are kept.

    :return: encoded frames ``(n_frames, 1, H, W)`` ``uint8``
    """
    from envs import make_env

    env = make_env(config.env_id, n_envs=config.n_envs, seed=seed)
    try:
        space = env.observation_space
        if space.dtype != np.uint8 or len(space.shape) != 3:
            problem = f"{config.env_id!r} has no channel-first uint8 image observations"
            raise ConfigError("", "data.env_id", problem)
        encoder = frame_encoder_for(
            space.shape, int(np.max(space.high)), size=config.size, bits=config.bits, binary_mode=config.binary_mode
        )
        policy = load_policy(policy_spec, env, seed)
        obs = env.reset()
        kept: list[np.ndarray] = [encoder(obs).numpy()]
        n_kept, step = len(obs), 0
        while n_kept < n_frames:
            obs, _, _, _ = env.step(policy(obs))
            step += 1
            if step % config.keep_every == 0:
                kept.append(encoder(obs).numpy())
                n_kept += len(obs)
    finally:
        env.close()
    return np.concatenate(kept)[:n_frames].astype(np.uint8)


def _split_counts(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


def build_dataset(config: DataConfig) -> Path:
    """Collect the training and test frames of ``config`` and write them to ``config.path``.

    :return: the written path
    """
    from envs import make_env

    probe = make_env(config.env_id, n_envs=1, seed=config.seed)
    space = probe.observation_space
    probe.close()
    encoder = frame_encoder_for(
        space.shape, int(np.max(space.high)), size=config.size, bits=config.bits, binary_mode=config.binary_mode
    )
    arrays: dict[str, np.ndarray] = {}
    for split, total, seed in (
        ("train", config.n_frames, config.seed),
        ("test", config.n_test_frames, config.seed + TEST_SEED_OFFSET),
    ):
        frames, owner = [], []
        for index, (spec, count) in enumerate(zip(config.policies, _split_counts(total, len(config.policies)))):
            if count:
                frames.append(collect_frames(config, spec, count, seed + 97 * index))
                owner.append(np.full(count, index, dtype=np.int16))
        arrays[split] = np.concatenate(frames)
        arrays[f"{split}_policy"] = np.concatenate(owner)
    path = Path(config.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        **arrays,
        levels=np.int64(encoder.levels),
        encoding=np.str_(frame_encoding(encoder)),
        env_id=np.str_(config.env_id),
        policies=np.array(config.policies, dtype=np.str_),
    )
    return path


def frame_encoding(encoder: GreyFrameEncoder | BinaryFrameEncoder) -> str:
    """``grey``, ``bits`` or ``argmax``: how the dataset's levels map back to pictures."""
    return "grey" if isinstance(encoder, GreyFrameEncoder) else encoder.mode


def load_dataset(path: str | Path) -> dict[str, np.ndarray]:
    """Read a dataset written by :func:`build_dataset` (``train``, ``test``, ``levels``, ``env_id``, ...)."""
    with np.load(path) as data:
        out = {key: data[key] for key in data.files}
    for key in ("train", "test", "levels"):
        if key not in out:
            raise ValueError(f"{path}: not a PixelCNN dataset (missing {key!r}); rebuild it with agents.pixelcnn.data")
    return out


def ensure_dataset(config: DataConfig) -> Path:
    """``config.path``, collecting it first if it does not exist yet."""
    path = Path(config.path)
    if not path.is_file():
        print(f"collecting {config.n_frames}+{config.n_test_frames} frames of {config.env_id} into {path}")
        build_dataset(config)
    return path


#: the command line's description (not taken from __doc__, which ``python -OO`` strips)
DESCRIPTION = "Collect frames with the project's own envs into the PixelCNN dataset (an ``.npz`` under ``data/``)."
PROG = "python -m agents pixelcnn-data"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m agents.pixelcnn.data CONFIG [key=value ...]`` (always rebuilds)."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("config", help="YAML config, e.g. configs/pixelcnn.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.n_frames=2000")
    args = parser.parse_args(argv)
    try:
        config = load_pixelcnn_config(args.config, args.overrides).data
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = build_dataset(config)
    data = load_dataset(path)
    print(f"wrote {path}: train {data['train'].shape}, test {data['test'].shape}, {int(data['levels'])} levels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
