"""A real sweep through `python -m search.run` whose configurations have synthetic images: real-only twins on the
same seeds, synthetic_effect.csv, the value curve, finalists on fresh seeds tested once, synthetic-image quality,
Grad-CAM, report.html and the offline W&B runs, then the report rebuilt (without reading the test split)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from search.report.rebuild import main as report_main
from search.run import run_sweep
from search.sweep_input import prepare
from trainables.datasets import DatasetSplits
from trainables.replicas import load_saved_trial

pytestmark = pytest.mark.slow

# Continuous learning rates: the searcher almost never draws a synthetic configuration's real-only twin itself,
# so the driver trains them after the search. Oversample needs no fit, so the sweep stays quick.
SPACE = {
    "fixed": {"training.epochs": 2, "training.batch_size": 32, "model.backbone": "basic_cnn"},
    "parameters": {
        "real_fraction": {"choice": [0.5, 1.0]},
        "optimizer.lr": {"loguniform": [0.0005, 0.005]},
        "synthetic.proportion": {"choice": [0.0, 0.5, 1.0]},
        "synthetic.generator": {"choice": ["oversample"], "when": {"synthetic.proportion": [0.5, 1.0]}},
        "synthetic.settings.rotation_probability": {"choice": [1.0], "when": {"synthetic.generator": "oversample"}},
    },
}
METRIC = "val_balanced_accuracy"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value or "" for name, value in attrs if name in ("src", "href")]


def test_synthetic_configurations_are_compared_with_their_twins_and_finalists_tested_once(
    tmp_path: Path, ray_cluster: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    report = tmp_path / "results" / "effect"
    # Every read of the test split, with what existed of the sweep when it happened.
    test_reads: list[dict[str, bool]] = []
    load_test = DatasetSplits.load_test

    def recorded_load_test(self: DatasetSplits):  # noqa: ANN202
        test_reads.append({
            "leaderboard": (report / "leaderboard.csv").is_file(), "twins": (report / "twins.csv").is_file(),
            "finalists trained": any(report.glob("finalists/*/checkpoint_*")),
        })
        return load_test(self)

    monkeypatch.setattr(DatasetSplits, "load_test", recorded_load_test)
    prepared = prepare([
        "--space", str(space), "--data", "phantom", "--phantom-count", "300", "--image-size", "16", "--num-samples", "5",
        "--searcher", "random", "--scheduler", "none", "--repeats", "2", "--storage", str(tmp_path / "results"),
        "--name", "effect", "--wandb-mode", "offline", "--max-concurrent", "2", "--finalists", "2",
        "--quality-max-images-per-class", "40", "--quality-cas-epochs", "2",
    ])
    assert test_reads == []
    outputs = run_sweep(prepared)
    assert outputs.trials_finished == 5
    # The test split was read once, after the search, the twins and the finalists' training.
    assert test_reads == [{"leaderboard": True, "twins": True, "finalists trained": True}]
    leaderboard = pd.read_csv(report / "leaderboard.csv").set_index("trial_id")
    twins = pd.read_csv(report / "twins.csv").set_index("trial_id")
    trials = pd.concat([leaderboard, twins])
    effects = pd.read_csv(report / "synthetic_effect.csv")
    synthetic = leaderboard[leaderboard["synthetic.proportion"] > 0]
    assert sorted(effects["trial_id"]) == sorted(synthetic.index)
    assert effects["twin_trial_id"].notna().all() and (effects["repeats"] == 2).all()
    for row in effects.itertuples():
        twin = trials.loc[row.twin_trial_id]
        partner = leaderboard.loc[row.trial_id]
        # The twin is the same configuration without synthetic images, with the same real images per class.
        assert twin["synthetic_images"] == 0 and partner["synthetic_images"] > 0
        assert (twin["real_fraction"], twin["optimizer.lr"]) == (partner["real_fraction"], partner["optimizer.lr"])
        real_counts = [column for column in leaderboard if column.startswith("real_count_")]
        assert (twin[real_counts] == partner[real_counts]).all()
        # Both trained every epoch (no scheduler), so the pair is read at each one's best epoch: the leaderboards'.
        assert row.epochs_compared == 2
        assert row.with_synthetic == pytest.approx(partner[METRIC]) and row.real_only == pytest.approx(twin[METRIC])
        assert row.effect == pytest.approx(row.with_synthetic - row.real_only)
        if pd.notna(row.ci_low):
            assert row.ci_low <= row.effect <= row.ci_high
        # Repeat r of both used seed r: the checkpoints' replicas say so.
        for trial_id in (row.trial_id, row.twin_trial_id):
            checkpoint = next(report.rglob(f"*{trial_id}*/checkpoint_*"))
            assert [state["seed"] for state in load_saved_trial(checkpoint).replica_states] == [0, 1]
    # Twins the searcher did not draw were trained after the search, and only those.
    assert (twins["synthetic_images"] == 0).all() and len(twins) <= len(synthetic)

    assert (report / "plots" / "value_of_synthetic_data.png").stat().st_size > 0
    page = (report / "report.html").read_text()
    links = Links()
    links.feed(page)
    assert links.links and all(link.startswith("data:") for link in links.links)
    assert "Synthetic effect against real-only twins" in page and effects["trial_id"].iloc[0] in page

    runs = sorted((report / "wandb").glob("offline-run-*"))
    assert len(runs) == len(leaderboard) + len(twins) + 1
    assert all(list(run.glob("*.wandb")) for run in runs)

    # Finalists: the top 2, the best synthetic and the best real-only configuration, on 3 fresh seeds, tested once.
    finalists = pd.read_csv(report / "finalists.csv")
    assert finalists["role"].iloc[0].startswith("top 1") and finalists["search_trial_id"].iloc[0] == leaderboard.index[0]
    assert finalists["role"].str.contains("best real-only").sum() == 1
    assert finalists["synthetic"].any() and not finalists["synthetic"].all()
    assert (finalists["seeds"] == "1000 1001 1002").all() and (finalists["epochs_run"] == 2).all()
    for trial_id in finalists["finalist_trial_id"]:
        checkpoint = next(report.glob(f"finalists/*{trial_id}*/checkpoint_*"))
        assert [state["seed"] for state in load_saved_trial(checkpoint).replica_states] == [1000, 1001, 1002]
    for metric in ("balanced_accuracy", "auroc", "recall_non_demented", "f1_non_demented"):
        assert (finalists[f"test_{metric}_ci_low"] <= finalists[f"test_{metric}"]).all()
        assert (finalists[f"test_{metric}"] <= finalists[f"test_{metric}_ci_high"]).all()
    test_metrics = json.loads((report / "test_metrics.json").read_text())
    assert test_metrics["trial_id"] == leaderboard.index[0] and 0.0 <= test_metrics["test_balanced_accuracy"] <= 1.0
    assert test_metrics["finalist_trial_id"] == finalists["finalist_trial_id"].iloc[0]
    assert {finalist["role"] for finalist in test_metrics["finalists"]} == set(finalists["role"])
    mcnemar = test_metrics["mcnemar"]
    assert 0.0 <= mcnemar["p_value"] <= 1.0 and mcnemar["seed"] == 1000
    assert sum(mcnemar[key] for key in ("synthetic_only_correct", "real_only_only_correct", "both_correct", "both_wrong")) \
        == len(prepared.dataset.load_test())

    # Synthetic-image quality on the real-only finalist's features, and Grad-CAM of the best finalist.
    quality = pd.read_csv(report / "synthetic_quality.csv")
    assert set(quality["generator"]) == {"oversample"}
    assert quality.loc[quality["class"] == "all", ["frechet_distance", "precision", "label_fidelity"]].notna().all().all()
    grids = sorted((report / "samples").glob("samples_oversample_*.png"))
    assert grids
    gradcams = sorted(report.glob("gradcam_*.png"))
    assert [path.name for path in gradcams] == sorted(f"gradcam_{name}.png" for name in prepared.dataset.class_names)
    for section in ("Finalists on fresh seeds", "McNemar", "Synthetic images: samples and quality", "Grad-CAM"):
        assert section in page
    assert page.count("data:image/png") >= len(gradcams) + len(grids) + 1 and "Not computed" not in page.split(
        "Other plots")[0].split("Finalists on fresh seeds")[1]

    # The report is rebuilt from the stored results alone, to the same numbers, without reading the test split.
    (report / "report.html").unlink()
    assert report_main([str(report)]) == 0
    assert (report / "report.html").is_file() and len(test_reads) == 2  # the one read above, by this test
    pd.testing.assert_frame_equal(pd.read_csv(report / "synthetic_effect.csv"), effects)
    assert "McNemar" in (report / "report.html").read_text()
