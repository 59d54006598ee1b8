"""A real sweep through `python -m search.run` whose configurations have synthetic images: real-only twins on the
same seeds, synthetic_effect.csv, the value curve, report.html and the offline W&B runs, then the report rebuilt."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from search.report import main as report_main
from search.run import main
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


def test_synthetic_configurations_are_compared_with_their_twins_on_the_same_seeds(tmp_path: Path, ray_cluster: None) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    code = main([
        "--space", str(space), "--data", "phantom", "--phantom-count", "300", "--image-size", "16", "--num-samples", "5",
        "--searcher", "random", "--scheduler", "none", "--repeats", "2", "--storage", str(tmp_path / "results"),
        "--name", "effect", "--wandb-mode", "offline", "--max-concurrent", "2",
    ])
    assert code == 0
    report = tmp_path / "results" / "effect"
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

    # The report is rebuilt from the stored Tune results alone, to the same numbers.
    (report / "report.html").unlink()
    assert report_main([str(report)]) == 0
    assert (report / "report.html").is_file()
    pd.testing.assert_frame_equal(pd.read_csv(report / "synthetic_effect.csv"), effects)
