"""The cross-game report (``python -m agents study aggregate``): event files written with the writer SB3 uses
(``torch.utils.tensorboard.SummaryWriter``) with known returns on two MinAtar games are read back, normalized
between known random and reference scores, and aggregated with rliable; the numbers are checked against
independent computations (scipy, numpy) and against what a dominating arm must give (P(X > Y) = 1)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import trim_mean
from torch.utils.tensorboard import SummaryWriter

from agents.__main__ import main as agents_main
from agents.pipeline.tb_layout import env_slug, write_layout
from agents.report.aggregate import aggregate
from agents.report.aggregate_metrics import aggregate_intervals, improvement_probabilities
from agents.report.aggregate_reference import REFERENCE_DIR, load_random_scores, measure_random_scores, minatar_game
from agents.report.aggregate_scores import (
    add_scores,
    load_finals,
    normalizations,
    per_run_table,
    score_matrices,
    sections,
)
from agents.report.stats import interval_label

GAMES = {"MinAtar/Breakout-v1": 10.0, "MinAtar/Asterix-v1": 20.0}  # env -> base return
RANDOM = {"Breakout": 1.0, "Asterix": 2.0}
ARMS = {"none": 0.0, "wn": 10.0, "bn": 5.0}  # added to the base; wn dominates none on every game
EXTRA_ARMS = {"wn-noinit": 3.0}  # run on one game only
SEEDS = [0, 1, 2, 3]
STEPS = 4000
NOISE = {0.1: 1.0, 0.5: 4.0}  # gaussian level -> return lost by "none" and "bn" (wn loses nothing)
BN_TRAIN_MODE_LOSS = 2.0


def clean_return(env: str, arm: str, seed: int) -> float:
    return GAMES[env] + {**ARMS, **EXTRA_ARMS}[arm] + seed


def _write_run(root: Path, env: str, arm: str, seed: int, *, finished: bool = True, algo: str = "PPO") -> None:
    run_dir = root / env_slug(env) / f"{algo}-{arm}-s{seed}"
    run_dir.mkdir(parents=True)
    doc = {"algo": algo, "train": {"total_timesteps": STEPS}, "run": {"env": env, "norm": arm, "seed": seed}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(doc))
    if finished:
        (run_dir / "final.json").write_text(json.dumps({"num_timesteps": STEPS, "wall_time_s": 10.0 + seed}))
    final = clean_return(env, arm, seed)
    writer = SummaryWriter(str(run_dir))
    writer.add_scalar("eval/return_clean", final - 50.0, STEPS // 2)  # superseded by the last evaluation
    writer.add_scalar("eval/return_clean", final, STEPS)
    for level, loss in NOISE.items():
        writer.add_scalar(f"eval/return_noise_gaussian_{level:g}", final - (0.0 if arm == "wn" else loss), STEPS)
    if arm == "bn":
        writer.add_scalar("eval/return_train_mode", final - BN_TRAIN_MODE_LOSS, STEPS)
        writer.add_scalar("eval/return_eval_mode", final, STEPS)
    writer.close()


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reference")
    with (folder / "random_scores.csv").open("w", newline="") as f:
        f.write("# test table\n")
        w = csv.writer(f)
        w.writerow(["game", "mean", "sem", "episodes", "seed", "sticky_actions"])
        for game, value in RANDOM.items():
            w.writerow([game, value, 0.1, 100, 0, 0.1])
    (folder / "published_scores.csv").write_text(
        "game,score,agent,budget,source\nBreakout,31,PPO,10M steps,a test source\n"
    )
    return folder


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs") / "study"
    for env in GAMES:
        for arm in ARMS:
            for seed in SEEDS:
                _write_run(root, env, arm, seed)
    _write_run(root, "MinAtar/Breakout-v1", "none", 9, finished=False)  # interrupted: left out by default
    write_layout(root, list(GAMES))
    return root


@pytest.fixture(scope="module")
def report(experiment: Path, reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "agg"
    return aggregate([experiment], out, reference_dir=reference_dir, reps=300, command="test")


def _per_run(report: Path) -> list[dict[str, str]]:
    with (report.parent / "per_run.csv").open() as f:
        return list(csv.DictReader(f))


def test_minatar_game_names() -> None:
    assert minatar_game("MinAtar/SpaceInvaders-v1") == "SpaceInvaders"
    assert minatar_game("MinAtar/Pong-v1") is None
    assert minatar_game("ALE/Breakout-v5") is None


def test_normalized_scores_of_known_returns(report: Path) -> None:
    rows = _per_run(report)
    assert len(rows) == len(GAMES) * len(ARMS) * len(SEEDS)  # the unfinished run is not aggregated
    for row in rows:
        env, arm, seed = row["env"], row["arm"], int(row["seed"])
        game = minatar_game(env)
        best = clean_return(env, "wn", SEEDS[-1])  # study-max: the best final clean return of the game
        expected = (clean_return(env, arm, seed) - RANDOM[game]) / (best - RANDOM[game])
        assert float(row["return_clean"]) == pytest.approx(clean_return(env, arm, seed))
        assert float(row["score"]) == pytest.approx(expected, rel=1e-5)
        loss = 0.0 if arm == "wn" else NOISE[0.5]
        assert float(row["score_noise_gaussian_0.5"]) == pytest.approx(
            expected - loss / (best - RANDOM[game]), rel=1e-5
        )
        if arm == "bn":
            assert float(row["bn_gap"]) == pytest.approx(-BN_TRAIN_MODE_LOSS / (best - RANDOM[game]), rel=1e-5)
        else:
            assert row["bn_gap"] == ""


def test_published_reference_where_the_table_has_one(experiment: Path, reference_dir: Path) -> None:
    finals, _ = load_finals([experiment])
    norms = normalizations(per_run_table(finals), "published", reference_dir)
    assert (norms["Breakout"].reference, norms["Breakout"].reference_kind) == (31.0, "published")
    assert norms["Asterix"].reference_kind == "study-max"
    assert norms["Asterix"].reference == clean_return("MinAtar/Asterix-v1", "wn", SEEDS[-1])
    assert norms["Breakout"](31.0) == pytest.approx(1.0) and norms["Breakout"](RANDOM["Breakout"]) == 0.0
    with pytest.raises(ValueError, match="reference must be one of"):
        normalizations(per_run_table(finals), "human", reference_dir)


def test_aggregates_match_independent_computation(experiment: Path, reference_dir: Path) -> None:
    finals, _ = load_finals([experiment])
    table = per_run_table(finals)
    table = add_scores(table, normalizations(table, "study-max", reference_dir))
    (section,) = sections(table)
    assert section.arms == ["none", "wn", "bn"] and section.games == ["Asterix", "Breakout"]
    matrices, dropped = score_matrices(table, "score", section.arms, section.games)
    assert matrices["wn"].shape == (len(SEEDS), 2) and not any(dropped.values())
    intervals = aggregate_intervals(matrices, reps=300)
    for arm, scores in matrices.items():
        assert intervals[arm]["IQM"].value == pytest.approx(trim_mean(scores.ravel(), 0.25))
        assert intervals[arm]["mean"].value == pytest.approx(scores.mean())
        assert intervals[arm]["median"].value == pytest.approx(np.median(scores.mean(axis=0)))
        assert intervals[arm]["optimality gap"].value == pytest.approx(np.mean(1.0 - np.minimum(scores, 1.0)))
        for interval in intervals[arm].values():
            assert interval.low <= interval.value + 1e-12 and interval.value <= interval.high + 1e-12
    assert intervals["wn"]["IQM"].low > intervals["none"]["IQM"].high  # 10 points apart, seeds span 3


def test_improvement_is_one_when_an_arm_dominates() -> None:
    rng = np.random.default_rng(0)
    low = rng.uniform(0.0, 0.4, size=(5, 3))
    high = rng.uniform(0.6, 1.0, size=(4, 3))  # more runs than the other arm: rliable's independent bootstrap
    mixed = rng.uniform(0.0, 1.0, size=(5, 3))
    by_pair = {(i.x, i.y): i for i in improvement_probabilities({"a": low, "b": high, "c": mixed}, reps=200)}
    assert list(by_pair) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert (by_pair[("a", "b")].probability.value, by_pair[("a", "b")].probability.high) == (0.0, 0.0)
    assert by_pair[("a", "b")].verdict == "b better"
    p = by_pair[("b", "c")].probability
    assert 0.5 < p.value < 1.0 and p.low <= p.value <= p.high


def test_one_run_per_game_gives_no_reading() -> None:
    """With one run a game the bootstrap only reproduces that run: its 'interval' excludes 0.5 but says nothing."""
    rng = np.random.default_rng(1)
    (improvement,) = improvement_probabilities({"a": rng.uniform(0.0, 0.4, (1, 5)), "b": rng.uniform(0.6, 1, (1, 5))})
    assert improvement.probability.low == improvement.probability.high == 0.0
    assert improvement.verdict == "no interval (one run per game)"
    assert "supports no claim" in interval_label([1, 1]) and "supports no claim" not in interval_label([2, 3])


def test_report_tables(report: Path) -> None:
    md = report.read_text()
    assert "Command: `test`" in md
    assert "| none | wn | 1.00 [1.00, 1.00] | wn better |" not in md  # pairs are listed in arm order, X first
    assert "| none | wn | 0.00 [0.00, 0.00] | wn better |" in md
    assert "| none | bn | 0.00 [0.00, 0.00] | bn better |" in md
    assert "trims nothing" not in md  # 4 runs per game
    assert "left out" in md.lower() and "PPO-none-s9" in md  # the unfinished run is listed, not aggregated
    assert "study-max" in md and "random_scores.csv" in md
    runs = len(_per_run(report))  # finished runs; seed s took 10 + s seconds
    wall = sum(float(row["wall_time_s"]) for row in _per_run(report))
    assert wall > 10 * runs and f"{wall:.0f} s in all over {runs} runs" in md
    # noise: wn keeps its score, so under the heaviest noise it beats none
    noise = md[md.index("## Noise robustness across games: gaussian") :]
    assert "P(X > Y) under the heaviest gaussian noise (0.5)" in noise
    assert "| none | wn | 0.00 [0.00, 0.00] | wn better |" in noise
    bn = md[md.index("## Batch-statistics policies") :]
    assert "| bn | 4 |" in bn and "eval mode higher" in bn


def test_report_files(report: Path) -> None:
    names = {p.name for p in report.parent.iterdir()}
    expected = {
        "report.md",
        "per_run.csv",
        "aggregates.png",
        "performance_profile.png",
        "improvement.png",
        "noise_robustness_gaussian.png",
        "improvement_noise_gaussian.png",
        "bn_mode_gap.png",
    }
    assert expected <= names
    for name in expected - {"report.md", "per_run.csv"}:
        assert (report.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{name}]({name})" in report.read_text()


def test_include_unfinished_marks_the_run(experiment: Path, reference_dir: Path, tmp_path: Path) -> None:
    path = aggregate([experiment], tmp_path, include_unfinished=True, reference_dir=reference_dir, reps=100)
    rows = _per_run(path)
    assert any(r["seed"] == "9" and r["status"] == "unfinished" for r in rows)
    assert "9†" in path.read_text()


def test_arms_on_fewer_games_get_their_own_section(experiment: Path, reference_dir: Path, tmp_path: Path) -> None:
    extra = tmp_path / "arms"
    for seed in (0, 1):
        _write_run(extra, "MinAtar/Breakout-v1", "wn-noinit", seed)
    path = aggregate([experiment, extra], tmp_path / "out", reference_dir=reference_dir, reps=100)
    md = path.read_text()
    assert "arms run on all 2 games" in md and "every arm, on the games all arms share (Breakout)" in md
    assert "trims nothing" in md  # wn-noinit has 2 runs per game: the interval is labelled for what it is
    assert (tmp_path / "out" / "aggregates_2.png").exists()
    (tmp_path / "out" / "learning_curves.png").write_bytes(b"not ours")  # e.g. a compare report in the same folder
    aggregate([experiment], tmp_path / "out", reference_dir=reference_dir, reps=50)
    assert not (tmp_path / "out" / "aggregates_2.png").exists()  # stale: this report has one section
    assert (tmp_path / "out" / "learning_curves.png").exists()


def test_interval_label_names_small_samples() -> None:
    assert "trims nothing" in interval_label([3, 3]) and "n = 3 per game" in interval_label([3, 3])
    assert "trims nothing" not in interval_label([5, 10]) and "n = 5–10" in interval_label([5, 10])


def test_command_line(experiment: Path, reference_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["study", "aggregate", str(experiment), "--out", str(out), "--reference-dir", str(reference_dir)]
    assert agents_main([*args, "--reps", "100"]) == 0
    assert f"Command: `python -m agents study aggregate {experiment}" in (out / "report.md").read_text()
    assert agents_main(["study", "aggregate", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert agents_main(["study", "aggregate", str(experiment)]) == 2  # no --out


def test_reference_below_random_is_an_error(experiment: Path, tmp_path: Path) -> None:
    (tmp_path / "random_scores.csv").write_text(
        "game,mean,sem,episodes,seed,sticky_actions\nBreakout,1000,0,1,0,0.1\nAsterix,1,0,1,0,0.1\n"
    )
    with pytest.raises(ValueError, match=r"Breakout.*not above its random score"):
        aggregate([experiment], tmp_path / "out", reference_dir=tmp_path, reps=50)


def test_committed_random_scores_cover_every_game() -> None:
    scores = load_random_scores(REFERENCE_DIR)
    assert sorted(scores) == ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"]
    for s in scores.values():
        assert s.episodes >= 100 and 0.0 <= s.mean < 10.0 and s.sem >= 0.0


def test_random_scores_are_measured_and_seeded() -> None:
    pytest.importorskip("minatar")
    first = measure_random_scores(("Breakout",), episodes=4, seed=3, n_envs=2)
    again = measure_random_scores(("Breakout",), episodes=4, seed=3, n_envs=2)
    assert first == again and first[0].episodes == 4 and first[0].mean >= 0.0
    with pytest.raises(ValueError, match="multiple of n_envs"):
        measure_random_scores(("Breakout",), episodes=3, n_envs=2)
