"""Arms of a grid that are a norm plus policy kwargs (``arms:``): parsing, refusals, run folders, what a run records,
the resume check, the reports' ``norm`` column, and a two-arm pipeline run read back."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.config import ConfigError, load_config, parse_config, save_config
from agents.pipeline.resume import check_resumable, config_changes
from agents.pipeline.runs import CONFIG_FILE, RunSpec, grid
from rlnorm.layers import LAYER_NORMS, WEIGHT_NORM_KINDS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMOKE = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
WN_INIT = {"norm": "wn", "policy_kwargs": {"wn_data_init": True}}


def smoke(**changes: Any) -> dict[str, Any]:
    """The smoke config with top-level entries replaced."""
    data = copy.deepcopy(SMOKE)
    data.update(changes)
    return data


def error(data: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "x.yaml")
    return info.value


# --------------------------------------------------------------------------------------------- parsing


def test_arms_follow_the_norms_with_their_own_labels_and_kwargs() -> None:
    config = parse_config(smoke(norms=["none", "bn"], arms={"wn": WN_INIT, "wn-noinit": {"norm": "wn"}}))
    assert config.arm_norms == {"none": "none", "bn": "bn", "wn": "wn", "wn-noinit": "wn"}
    assert config.arm_policy_kwargs("wn") == {"wn_data_init": True}
    assert config.arm_policy_kwargs("wn-noinit") == {} and config.arm_policy_kwargs("bn") == {}


def test_arms_alone_need_no_norms_list() -> None:
    data = smoke(arms={"wn": WN_INIT})
    del data["norms"]
    config = parse_config(data)
    assert config.norms == () and config.arm_norms == {"wn": "wn"}
    assert parse_config(smoke(norms=[], arms={"wn": WN_INIT})).arm_norms == {"wn": "wn"}


def test_neither_norms_nor_arms_is_missing_norms() -> None:
    data = smoke()
    del data["norms"]
    err = error(data)
    assert err.field == "norms" and "missing" in str(err)


def test_resolved_config_round_trips_and_omits_empty_arms() -> None:
    plain = parse_config(smoke())
    assert "arms" not in plain.to_dict(), "a config without arms must save as before arms existed"
    config = parse_config(smoke(arms={"wn": WN_INIT}))
    doc = config.to_dict()
    assert list(doc).index("arms") == list(doc).index("norms") + 1
    assert doc["arms"] == {"wn": {"norm": "wn", "policy_kwargs": {"wn_data_init": True}}}
    assert parse_config(doc) == config
    assert parse_config(plain.to_dict()) == plain


def test_arm_overrides_reach_nested_keys() -> None:
    from agents.config import apply_overrides

    data = apply_overrides(smoke(arms={"wn": WN_INIT}), ["arms.wn.policy_kwargs.wn_data_init=false"])
    assert parse_config(data).arm_policy_kwargs("wn") == {"wn_data_init": False}


# --------------------------------------------------------------------------------------------- refusals


def test_unknown_arm_norm_names_the_field_and_lists_the_norms() -> None:
    err = error(smoke(arms={"x": {"norm": "batchnorm"}}))
    assert err.field == "arms.x.norm"
    assert all(norm in str(err) for norm in LAYER_NORMS)


def test_arm_label_already_in_norms_is_refused() -> None:
    err = error(smoke(norms=["none", "bn"], arms={"bn": {"norm": "bn", "policy_kwargs": {"net_arch": [8]}}}))
    assert err.field == "arms.bn" and "already" in str(err)


def test_label_written_twice_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    text = yaml.safe_dump(smoke(), sort_keys=False)
    text += "arms:\n  wn: {norm: wn, policy_kwargs: {wn_data_init: true}}\n  wn: {norm: wn}\n"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "'wn' written twice" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("label", ["wn/x", "wn x", "", "ün"])
def test_label_that_cannot_name_a_folder_is_refused(label: str) -> None:
    err = error(smoke(arms={label: {"norm": "wn"}}))
    assert err.field == f"arms.{label}" and "letters, digits" in str(err)


def test_label_that_is_another_norms_name_is_refused() -> None:
    err = error(smoke(norms=["none"], arms={"bn": {"norm": "ln"}}))
    assert err.field == "arms.bn.norm" and "'bn'" in str(err)


def test_unknown_arm_key_suggests_the_closest() -> None:
    err = error(smoke(arms={"wn": {"norm": "wn", "policy_kwarg": {}}}))
    assert err.field == "arms.wn.policy_kwarg" and "did you mean 'policy_kwargs'" in str(err)


def test_arm_without_norm_is_refused() -> None:
    err = error(smoke(arms={"wn": {"policy_kwargs": {"wn_data_init": True}}}))
    assert err.field == "arms.wn.norm" and "missing" in str(err)


def test_norm_inside_arm_policy_kwargs_is_refused() -> None:
    err = error(smoke(arms={"wn": {"norm": "wn", "policy_kwargs": {"norm": "ln"}}}))
    assert err.field == "arms.wn.policy_kwargs.norm" and "arms.wn.norm" in str(err)


@pytest.mark.parametrize(
    "where",
    [("policy_kwargs",), ("hyperparams", "default", "policy_kwargs"), ("hyperparams", "CartPole-v1", "policy_kwargs")],
)
def test_arm_kwarg_also_set_config_wide_is_refused(where: tuple[str, ...]) -> None:
    data = smoke(arms={"wide": {"norm": "wn", "policy_kwargs": {"ortho_init": False}}})
    node = data
    for part in where:
        node = node.setdefault(part, {})
    node["ortho_init"] = True
    err = error(data)
    assert err.field == "arms.wide.policy_kwargs.ortho_init"
    assert ".".join(where) in str(err) and "either per arm or config-wide" in str(err)


@pytest.mark.parametrize("norm", [n for n in LAYER_NORMS if n not in WEIGHT_NORM_KINDS])
def test_data_init_on_a_norm_without_weight_norm_is_refused(norm: str) -> None:
    err = error(smoke(arms={"x": {"norm": norm, "policy_kwargs": {"wn_data_init": True}}}))
    assert err.field == "arms.x.policy_kwargs.wn_data_init"
    assert all(kind in str(err) for kind in WEIGHT_NORM_KINDS)


def test_config_wide_data_init_reaching_a_norm_without_weight_norm_is_refused() -> None:
    err = error(smoke(norms=["wn", "none"], policy_kwargs={"wn_data_init": True}))
    assert err.field == "policy_kwargs.wn_data_init" and "none" in str(err)
    # all arms weight-normalized: allowed, as before arms existed
    config = parse_config(smoke(norms=["wn", "wn+mobn"], policy_kwargs={"wn_data_init": True}))
    assert config.arm_norms == {"wn": "wn", "wn+mobn": "wn+mobn"}


def test_data_init_must_be_a_bool() -> None:
    err = error(smoke(arms={"wn": {"norm": "wn", "policy_kwargs": {"wn_data_init": "yes"}}}))
    assert err.field == "arms.wn.policy_kwargs.wn_data_init" and "true or false" in str(err)


def test_batch_statistics_check_uses_the_arms_real_norm() -> None:
    eval_one_env = {**SMOKE["eval"], "n_envs": 1, "bn_modes": True}
    err = error(smoke(norms=["none"], arms={"bn-wide": {"norm": "bn"}}, eval=eval_one_env))
    assert err.field == "eval.n_envs" and "bn-wide (bn)" in str(err)
    # a label that merely looks like BN is judged by its norm
    parse_config(smoke(norms=["none"], arms={"bn-like": {"norm": "ln"}}, eval=eval_one_env))


# --------------------------------------------------------------------------------------------- the grid


def test_grid_has_one_distinct_folder_per_arm_built_with_the_real_norm() -> None:
    config = parse_config(smoke(norms=["none"], arms={"wn": WN_INIT, "wn-noinit": {"norm": "wn"}}, seeds=[0, 1]))
    specs = grid(config)
    assert len(specs) == 6 and len({s.run_dir for s in specs}) == 6
    by_name = {s.name: s for s in specs}
    assert set(by_name) == {f"PPO-{label}-s{seed}" for label in ("none", "wn", "wn-noinit") for seed in (0, 1)}
    assert by_name["PPO-wn-noinit-s0"].norm == "wn" and by_name["PPO-wn-noinit-s0"].arm_policy_kwargs == {}
    assert by_name["PPO-wn-s1"].arm_policy_kwargs == {"wn_data_init": True}
    plain = by_name["PPO-none-s0"]
    assert (plain.arm, plain.label) == ("", "none"), "an arm of `norms` is the RunSpec it always was"


def test_runspec_refuses_an_arm_the_config_does_not_have() -> None:
    config = parse_config(smoke(arms={"wn": WN_INIT}))
    with pytest.raises(ValueError, match="not an arm"):
        RunSpec(config, "CartPole-v1", "ln", 0, "wn")
    with pytest.raises(ValueError, match="not an arm"):
        RunSpec(config, "CartPole-v1", "wn", 0, "wn-other")


def test_policy_gets_the_arm_kwargs_on_top_of_the_config_wide_ones() -> None:
    from agents.pipeline.train import algo_kwargs

    config = parse_config(smoke(norms=["none"], arms={"wn": WN_INIT}))
    wn = next(s for s in grid(config) if s.label == "wn")
    kwargs = algo_kwargs(wn, {"norm": "wn"})["policy_kwargs"]
    assert kwargs == {"net_arch": [32, 32], "wn_data_init": True, "norm": "wn"}
    none = next(s for s in grid(config) if s.label == "none")
    assert "wn_data_init" not in algo_kwargs(none, {"norm": "none"})["policy_kwargs"]


# --------------------------------------------------------------------------------------------- resume check


def record(spec: RunSpec) -> None:
    """Write the ``config.yaml`` a run of ``spec`` records when it starts (as train_run does)."""
    spec.run_dir.mkdir(parents=True)
    save_config(spec.config, spec.run_dir / CONFIG_FILE, env=spec.env_id, norm=spec.norm, arm=spec.label, seed=0)


def arm_spec(tmp_path: Path, arms: dict[str, Any], label: str, **changes: Any) -> RunSpec:
    config = parse_config(smoke(**{"norms": ["none"], "arms": arms, "runs_dir": str(tmp_path), **changes}))
    return next(s for s in grid(config) if s.label == label)


def test_changing_an_arms_kwargs_or_norm_is_refused_on_resume(tmp_path: Path) -> None:
    record(arm_spec(tmp_path, {"wn-x": WN_INIT}, "wn-x"))
    changed = arm_spec(tmp_path, {"wn-x": {"norm": "wn"}}, "wn-x")
    assert config_changes(changed)["policy_kwargs.wn_data_init"][0] is True
    with pytest.raises(ConfigError, match=r"policy_kwargs\.wn_data_init"):
        check_resumable(changed)
    renormed = arm_spec(tmp_path, {"wn-x": {"norm": "wn+mobn", "policy_kwargs": {"wn_data_init": True}}}, "wn-x")
    with pytest.raises(ConfigError) as info:
        check_resumable(renormed)
    assert info.value.field == "norm" and "'wn' -> 'wn+mobn'" in str(info.value)


def test_other_arms_do_not_concern_a_run(tmp_path: Path) -> None:
    record(arm_spec(tmp_path, {"wn": WN_INIT}, "wn"))
    grown = arm_spec(tmp_path, {"wn": WN_INIT, "wn-noinit": {"norm": "wn"}, "mobn": {"norm": "wn+mobn"}}, "wn")
    assert config_changes(grown) == {}
    record(arm_spec(tmp_path, {"wn": WN_INIT}, "none"))
    assert config_changes(arm_spec(tmp_path, {"ln-x": {"norm": "ln"}}, "none")) == {}


def test_moving_a_kwarg_between_arm_and_config_is_no_change(tmp_path: Path) -> None:
    record(arm_spec(tmp_path, {"wn": WN_INIT}, "wn", norms=[]))
    config = parse_config(smoke(norms=["wn"], runs_dir=str(tmp_path), policy_kwargs={"wn_data_init": True}))
    (spec,) = grid(config)
    assert spec.run_dir == arm_spec(tmp_path, {"wn": WN_INIT}, "wn", norms=[]).run_dir
    assert config_changes(spec) == {}, "the run trains with the same policy kwargs either way"


def test_a_plain_run_of_an_older_version_still_resumes(tmp_path: Path) -> None:
    config = parse_config(smoke(runs_dir=str(tmp_path)))
    spec = grid(config)[0]
    spec.run_dir.mkdir(parents=True)
    # as rlnorm wrote it before arms: no `arms` entry, no `run.arm`
    save_config(config, spec.run_dir / CONFIG_FILE, env=spec.env_id, norm=spec.norm, seed=0)
    assert "arm" not in (spec.run_dir / CONFIG_FILE).read_text()
    assert check_resumable(spec) == {}


# --------------------------------------------------------------------------------------------- a pipeline run


@pytest.fixture(scope="module")
def two_arms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WN with and without its data-dependent init, trained by the pipeline (the smoke config, shorter)."""
    from agents.commands import main

    root = tmp_path_factory.mktemp("arms")
    path = root / "arms.yaml"
    data = smoke(experiment="arms", runs_dir=str(root / "runs"), reports_dir=str(root / "reports"), arms={})
    data["arms"] = {"wn": WN_INIT, "wn-noinit": {"norm": "wn"}}
    del data["norms"]
    data["train"] = {**data["train"], "total_timesteps": 512, "checkpoint_freq": 512}
    data["eval"] = {**data["eval"], "freq": 0, "noise": []}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main([str(path), "--no-compare"]) == 0
    return root


def test_pipeline_writes_one_folder_per_arm_recording_norm_and_label(two_arms: Path) -> None:
    from stable_baselines3 import PPO

    env_dir = two_arms / "runs" / "arms" / "CartPole-v1"
    assert sorted(p.name for p in env_dir.iterdir()) == ["PPO-wn-noinit-s0", "PPO-wn-s0"]
    for label, data_init in (("wn", True), ("wn-noinit", False)):
        run_dir = env_dir / f"PPO-{label}-s0"
        run = yaml.safe_load((run_dir / CONFIG_FILE).read_text())["run"]
        assert (run["norm"], run["arm"]) == ("wn", label)
        policy = PPO.load(run_dir / "final_model.zip", device="cpu").policy
        assert policy.norm == "wn" and policy.wn_data_init is data_init


def test_reports_and_probes_read_the_arm_label(two_arms: Path) -> None:
    from agents.report.scalars import load_scalars
    from agents.studies.batch_probe import find_trained_runs

    scalars = load_scalars(two_arms / "runs" / "arms")
    assert set(scalars.norm.unique()) == {"wn", "wn-noinit"}
    runs = find_trained_runs(two_arms / "runs" / "arms")
    assert sorted((r.arm, r.norm) for r in runs) == [("wn", "wn"), ("wn-noinit", "wn")]


def test_finished_arms_are_skipped(two_arms: Path, capsys: pytest.CaptureFixture) -> None:
    from agents.commands import main

    assert main([str(two_arms / "arms.yaml"), "--no-compare"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 2, out


# --------------------------------------------------------------------------------------------- the study configs


def test_minatar_study_is_five_games_four_arms_five_seeds_with_wn_data_init() -> None:
    config = load_config(CONFIGS / "study_minatar.yaml")
    assert {env.removeprefix("MinAtar/") for env in config.envs} == {
        "Asterix-v1",
        "Breakout-v1",
        "Freeway-v1",
        "Seaquest-v1",
        "SpaceInvaders-v1",
    }
    assert config.arm_norms == {"none": "none", "bn": "bn", "ln": "ln", "wn": "wn"}
    assert config.arm_policy_kwargs("wn") == {"wn_data_init": True}
    assert len(config.seeds) == 5 and len(grid(config)) == 100


def test_minatar_dqn_arm_matches_the_ppo_grid() -> None:
    """The DQN grid covers the same games, arms and seeds as the PPO grid, in a runs folder of its own."""
    ppo, dqn = load_config(CONFIGS / "study_minatar.yaml"), load_config(CONFIGS / "study_minatar_dqn.yaml")
    assert dqn.algo == "DQN" and dqn.experiment != ppo.experiment
    assert set(dqn.envs) == set(ppo.envs) and dqn.seeds == ppo.seeds
    assert dqn.arm_norms == ppo.arm_norms and dqn.arm_policy_kwargs("wn") == {"wn_data_init": True}
    assert len(grid(dqn)) == 100


def test_wn_parts_share_the_minatar_study_runs() -> None:
    """The WN-parts config writes into the study's runs folder: every run it shares with the study (same env and
    label) must train with the same settings, or one config would refuse the other's finished runs."""
    from agents.pipeline.resume import run_settings

    study = load_config(CONFIGS / "study_minatar.yaml")
    parts = load_config(CONFIGS / "study_minatar_wn_parts.yaml")
    assert parts.experiment == study.experiment and set(parts.envs) < set(study.envs) and len(parts.envs) >= 2
    assert {"wn-noinit", "wn+mobn"} <= set(parts.arm_norms) and len(parts.seeds) >= 5
    assert parts.arm_policy_kwargs("wn-noinit") == {}
    shared = [s for s in grid(parts) if s.run_dir in {t.run_dir for t in grid(study)}]
    assert shared, "the parts config compares against the study's own none/wn runs"
    for spec in shared:
        assert run_settings(parts.to_dict(), spec.env_id, spec.label) == run_settings(
            study.to_dict(), spec.env_id, spec.label
        ), spec.run_dir
