"""TensorBoard tag names shared by the callbacks and the report, where a run's events live, and the custom-scalars
layout.

A run writes its event files in its own directory (:func:`event_dir`), so TensorBoard names it as the grid does,
``<experiment>/<env>/<algo>-<norm>-s<seed>``; runs begun before that keep theirs in ``<run>/tb/``.

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
#: per-norm mean runs (:mod:`agents.pipeline.tb_means`), ``<experiment>/_mean/<env>/<algo>-<norm>``
MEAN_DIR = "_mean"
BY_ENV_PREFIX = "by_env/"
#: where runs of rlnorm 0.1 and 0.2 keep their event files (TensorBoard names such a run ``.../<run>/tb``)
LEGACY_EVENTS_DIR = "tb"
EVENTS_GLOB = "events.out.tfevents.*"
#: TensorBoard's Time Series page colours runs by the capture group of this regex on the run name
#: (``runColorGroup=regex:``): one colour per norm, for ``<algo>-<norm>-s<seed>`` (with or without the legacy
#: ``/tb``) and the mean run ``<algo>-<norm>``
NORM_COLOR_REGEX = r"-([^/]+?)(?:-s[0-9]+)?(?:/tb)?$"
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


def event_dir(run_dir: str | Path) -> Path:
    """Where a run's TensorBoard event files are (and go): the run directory itself, or its ``tb/`` for a run
    that began with its events there (so the curves of a resumed old run stay one TensorBoard run).

    :param run_dir: the run directory
    """
    legacy = Path(run_dir) / LEGACY_EVENTS_DIR
    return legacy if any(legacy.glob(EVENTS_GLOB)) else Path(run_dir)


def has_events(run_dir: str | Path) -> bool:
    """Whether a run directory holds TensorBoard event files (in the run directory or its legacy ``tb/``).

    :param run_dir: the run directory
    """
    return any(event_dir(run_dir).glob(EVENTS_GLOB))


def remove_events(run_dir: str | Path) -> None:
    """Delete a run's event files (a run that starts over must not mix its curves with an earlier attempt's).

    :param run_dir: the run directory
    """
    for folder in (Path(run_dir), Path(run_dir) / LEGACY_EVENTS_DIR):
        for path in folder.glob(EVENTS_GLOB):
            path.unlink(missing_ok=True)
    if (Path(run_dir) / LEGACY_EVENTS_DIR).is_dir() and not any((Path(run_dir) / LEGACY_EVENTS_DIR).iterdir()):
        (Path(run_dir) / LEGACY_EVENTS_DIR).rmdir()


def tensorboard_url(host: str = "127.0.0.1", port: int = 6006, means: bool = False) -> str:
    """The custom-scalars page of a TensorBoard server.

    The custom-scalars charts colour each run on its own; ``means=True`` filters the runs to the per-norm mean
    runs (:mod:`agents.pipeline.tb_means`), one line and one colour per norm. The URL also asks the Time Series
    page to colour runs by norm (:data:`NORM_COLOR_REGEX`), which that page supports.

    :param host: the server's host
    :param port: its port
    :param means: show only the per-norm mean runs
    """
    from urllib.parse import quote

    query = f"runColorGroup={quote('regex:' + NORM_COLOR_REGEX, safe='')}"
    return f"http://{host}:{port}/?{query}#custom_scalars" + (f"&regexInput={MEAN_DIR}" if means else "")


def noise_tag(kind: str, level: float) -> str:
    """Tag of the return under one noise condition, e.g. ``eval/return_noise_gaussian_0.1``.

    :param kind: noise kind (see :data:`envs.noise.NOISE_KIND_OPTIONS`)
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
    return f"{BY_ENV_PREFIX}{env_slug(env_id)}/{metric.split('/', 1)[-1]}"


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
