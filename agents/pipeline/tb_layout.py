"""TensorBoard tag names shared by the callbacks and the report, and the custom-scalars layout.

TensorBoard's custom-scalars plugin draws one chart per tag regex, with one line per (run, tag). The same
tag (``eval/return_clean``) exists in the runs of every env, so to get "the norms of one env on one chart"
each run also logs its headline numbers under an env-specific tag, ``by_env/<env>/<metric>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from agents.config import NoiseSpec

LAYOUT_DIR = "_layout"
RETURN_CLEAN = "eval/return_clean"
RETURN_TRAIN_MODE = "eval/return_train_mode"
RETURN_EVAL_MODE = "eval/return_eval_mode"
BN_MODE_KL = "eval/bn_mode_kl"
ROLLOUT_RETURN = "rollout/ep_rew_mean"
NOISE_TAG_PREFIX = "eval/return_noise_"
NOISE_TAG_RE = re.compile(rf"^{NOISE_TAG_PREFIX}(?P<kind>[a-z_]+?)_(?P<level>[0-9.e+\-]+)$")


def env_slug(env_id: str) -> str:
    """A directory- and tag-safe form of an env id (``MinAtar/Breakout-v1`` -> ``MinAtar-Breakout-v1``).

    :param env_id: the gymnasium id
    """
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", env_id).strip("-")


def noise_tag(kind: str, level: float) -> str:
    """Tag of the return under one noise condition, e.g. ``eval/return_noise_gaussian_0.1``.

    :param kind: noise kind (see :data:`agents.config.loader.NOISE_OPTIONS`)
    :param level: its strength
    """
    return f"{NOISE_TAG_PREFIX}{kind}_{level:g}"


def parse_noise_tag(tag: str) -> tuple[str, float] | None:
    """``(kind, level)`` of a :func:`noise_tag`, ``None`` for any other tag.

    :param tag: a TensorBoard tag
    """
    match = NOISE_TAG_RE.match(tag)
    return (match["kind"], float(match["level"])) if match else None


def by_env_tag(env_id: str, metric: str) -> str:
    """Env-specific copy of a metric tag, e.g. ``by_env/MinAtar-Breakout-v1/return_clean``.

    :param env_id: the gymnasium id
    :param metric: a tag such as ``eval/return_clean`` (its prefix is dropped)
    """
    return f"by_env/{env_slug(env_id)}/{metric.split('/', 1)[-1]}"


def layout(env_ids: Iterable[str], noise: Iterable[NoiseSpec] = ()) -> dict[str, dict[str, list]]:
    """The custom-scalars layout: one category per env, one multiline chart per metric.

    :param env_ids: the envs of the experiment
    :param noise: the noise conditions evaluated
    :return: ``{category: {chart title: ["Multiline", [tag regex, ...]]}}`` as torch's ``add_custom_scalars``
        expects
    """
    noise = list(noise)
    out: dict[str, dict[str, list]] = {}
    for env_id in env_ids:
        charts = {
            "training return (all norms)": ["Multiline", [re.escape(by_env_tag(env_id, ROLLOUT_RETURN))]],
            "eval return, clean (all norms)": ["Multiline", [re.escape(by_env_tag(env_id, RETURN_CLEAN))]],
        }
        for spec in noise:
            charts[f"eval return, {spec.kind} noise (all norms, all levels)"] = [
                "Multiline",
                [re.escape(by_env_tag(env_id, f"eval/return_noise_{spec.kind}_")) + ".*"],
            ]
        charts["BN: train-mode vs eval-mode return"] = [
            "Multiline",
            [re.escape(by_env_tag(env_id, RETURN_TRAIN_MODE)), re.escape(by_env_tag(env_id, RETURN_EVAL_MODE))],
        ]
        out[env_slug(env_id)] = charts
    return out


def write_layout(experiment_dir: str | Path, env_ids: Iterable[str], noise: Iterable[NoiseSpec] = ()) -> Path:
    """Write the custom-scalars layout once per experiment, in ``<experiment_dir>/_layout/``.

    :param experiment_dir: ``runs/<experiment>``
    :param env_ids: the envs of the experiment
    :param noise: the noise conditions evaluated
    :return: the directory holding the layout event file
    """
    target = Path(experiment_dir) / LAYOUT_DIR
    if target.exists() and any(target.iterdir()):
        return target
    target.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(log_dir=str(target))
    try:
        writer.add_custom_scalars(layout(env_ids, noise))
    finally:
        writer.close()
    return target
