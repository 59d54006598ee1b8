"""The best real-only finalist is a real-only twin; trained in the search space, its Tune result is still its own.

Issue 18: with a synthetic key fixed by the space (`synthetic.generator: oversample`), a twin's values lack that key
(search.answer.twins.twin_space drops every synthetic key), while the finalists' run trains the twin's point in the
search space, whose active values have it. The finalist was then looked up under the twin's own values, found no
result, and finalists.csv said `best real-only ... not trained` although Tune had trained it: McNemar's test and the
synthetic-quality section were not computed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from search.answer.finalists import choose_finalists
from search.answer.trial_history import histories_of
from search.answer.twins import twin_points, twin_space
from search.report import files
from search.tuning.finalists_run import pick_checkpoints
from spaces import SearchSpace

METRIC = "val_balanced_accuracy"
# The space of the issue: the generator fixed, only the proportion searched.
ISSUE_SPACE = {
    "name": "issue18",
    "fixed": {"training.epochs": 2, "model.backbone": "basic_cnn", "real_fraction": 0.2,
              "synthetic.generator": "oversample"},
    "parameters": {"synthetic.proportion": {"choice": [0.5, 1.0]}},
}


def _result(folder: Path, trial_id: str, config: dict[str, Any], score: float) -> Any:
    """A Tune Result as a ResultGrid holds it: its config is the sample the trial got (params.json), not the resolved
    configuration; two epochs reported and the best one checkpointed."""
    from ray.tune import Checkpoint, Result

    path = folder / trial_id
    (path / "checkpoint_000000").mkdir(parents=True)
    checkpoint = Checkpoint.from_directory(str(path / "checkpoint_000000"))
    frame = pd.DataFrame({"trial_id": [trial_id, trial_id], "epoch": [1, 2], METRIC: [score - 0.1, score]})
    return Result(metrics={"trial_id": trial_id, METRIC: score, "config": config}, checkpoint=checkpoint, error=None,
                  path=str(path), metrics_dataframe=frame, best_checkpoints=[(checkpoint, {METRIC: score})])


def test_a_real_only_twin_finalist_finds_its_result_when_the_space_fixes_a_synthetic_key(tmp_path: Path) -> None:
    space = SearchSpace.model_validate(ISSUE_SPACE)
    search = [_result(tmp_path / "search", "s05", {"synthetic.proportion": 0.5}, 0.80),
              _result(tmp_path / "search", "s10", {"synthetic.proportion": 1.0}, 0.85)]
    twins = twin_space(space)
    points = twin_points(histories_of(search, space, "search"), twins)
    # The twin's sample is empty: its space fixes the proportion at 0 and drops `synthetic.generator`.
    assert points == [{}]
    twin = _result(tmp_path / "twins", "twin", points[0], 0.70)
    histories = [*histories_of(search, space, "search"), *histories_of([twin], twins, "twin")]
    assert "synthetic.generator" not in histories[-1].values
    leaderboard = pd.DataFrame({"trial_id": ["s10", "s05"], "status": "ok"})
    with_twins = pd.DataFrame({"trial_id": ["s10", "s05", "twin"], "status": "ok"})
    chosen = choose_finalists(leaderboard, histories, 2, with_twins)
    assert [(f.source_trial_id, f.role) for f in chosen] == [
        ("s10", "top 1"), ("s05", "top 2"), ("twin", "best real-only, twin of the best synthetic")
    ]

    # The finalists' run trains each finalist's point in the search space (search.stages), and Tune hands back those
    # points as the results' configs.
    finalist_results = [_result(tmp_path / "finalists", f"f{i}", finalist.point(space), 0.9 - 0.1 * i)
                        for i, finalist in enumerate(chosen)]
    assert finalist_results[2].config == {"synthetic.proportion": 0.0}
    outcomes = pick_checkpoints(chosen, finalist_results, space, METRIC, "max")
    assert [(o.trial_id, o.note) for o in outcomes] == [("f0", ""), ("f1", ""), ("f2", "")]
    real_only = outcomes[2]
    assert real_only.finalist.best_real_only and real_only.checkpoint is not None
    assert real_only.epochs_run == 2 and real_only.validation == pytest.approx(0.7)
    assert not real_only.trial.synthetic.is_active
    # A finalist whose result is missing is still reported as not trained.
    assert pick_checkpoints(chosen, finalist_results[:2], space, METRIC, "max")[2].note == "not trained"


@pytest.mark.slow
def test_the_issues_sweep_tests_its_real_only_finalist_and_computes_mcnemar_and_quality(
    tmp_path: Path, module_ray: None
) -> None:
    # module_ray, not the session's ray_cluster: modules after this one (test_run_validation) check no Ray is up.
    from search.run import main

    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump({**ISSUE_SPACE, "fixed": {**ISSUE_SPACE["fixed"], "training.epochs": 1}}))
    code = main([
        "--space", str(space_path), "--data", "phantom", "--phantom-count", "300", "--image-size", "24",
        "--repeats", "1", "--searcher", "grid", "--scheduler", "none", "--metric", METRIC, "--mode", "max",
        "--wandb-mode", "disabled", "--name", "issue18", "--storage", str(tmp_path / "results"),
        "--max-concurrent", "2",
    ])
    assert code == 0
    report = tmp_path / "results" / "issue18"
    finalists = pd.read_csv(report / files.FINALISTS_FILE)
    real_only = finalists[finalists["role"].str.contains("best real-only")]
    assert len(real_only) == 1, finalists[["role", "note"]]
    row = real_only.iloc[0]
    assert not row["synthetic"] and row["epochs_run"] == 1 and pd.isna(row["note"]), row.to_dict()
    assert row["seeds"] == "1000 1001 1002" and 0.0 <= row["test_balanced_accuracy"] <= 1.0
    document = json.loads((report / files.TEST_METRICS_FILE).read_text())
    mcnemar = document["mcnemar"]
    assert "note" not in mcnemar and 0.0 <= mcnemar["p_value"] <= 1.0, mcnemar
    assert mcnemar["real_only_trial_id"] == row["finalist_trial_id"]
    assert (report / files.QUALITY_FILE).is_file()
    # The real-only finalist is also the best synthetic one's twin: the paired effect on the test split, 3 seeds.
    effect = document["synthetic_effect_on_test"]
    assert effect["twin_trial_id"] == row["finalist_trial_id"] and effect["seeds"] == [1000, 1001, 1002], effect
    balanced = effect["metrics"]["balanced_accuracy"]
    assert balanced["repeats"] == 3 and (balanced["ci_low"] is not None or "no spread" in balanced["note"]), balanced
