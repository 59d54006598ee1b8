"""report.html opens with the answer, in words, from the report folder's own numbers; no table runs off the page."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pandas as pd
import pytest

from search.report.page import ReportContext, render
from search.report.sections import SECTIONS
from search.settings.sweep_config import SweepConfig
from search.settings.sweep_record import SweepRecord, new_record
from spaces import load_space

CONFIG = {"real_fraction": 0.6, "augmentation.policy": "hflip", "model.backbone": "basic_cnn", "optimizer.lr": 0.002,
          "synthetic.proportion": 0.5, "synthetic.mode": "add", "synthetic.classes": "all",
          "synthetic.generator": "oversample", "synthetic.filter": "none"}


def record_folder(folder: Path, not_computed: dict[str, str] | None = None) -> SweepRecord:
    record = new_record(SweepConfig(repeats=3), load_space("quick"), "answer-demo", str(folder), "phantom: 2 classes")
    record.not_computed = dict(not_computed or {})
    record.write(folder)
    pd.DataFrame({
        "rank": [1, 2], "trial_id": ["s1", "r1"], "status": ["ok", "ok"], "val_balanced_accuracy": [0.871, 0.802],
        "val_balanced_accuracy_std": [0.011, 0.02], "real_fraction": [0.6, 0.6], "augmentation.policy": ["hflip", "none"],
        "synthetic.proportion": [0.5, 0.0], "synthetic.mode": ["add", "add"], "synthetic.generator": ["oversample", None],
    }).to_csv(folder / "leaderboard.csv", index=False)
    pd.DataFrame([
        {"trial_id": "s1", "twin_trial_id": "t1", "synthetic": "oversample x0.5 add", "real_fraction": 0.6,
         "epochs_compared": 8, "with_synthetic": 0.871, "real_only": 0.802, "effect": 0.069, "ci_low": 0.031,
         "ci_high": 0.107, "p_value": 0.012, "p_holm": 0.024, "repeats": 3, "note": None},
        {"trial_id": "s2", "twin_trial_id": "t2", "synthetic": "oversample x1 add", "real_fraction": 0.3,
         "epochs_compared": 8, "with_synthetic": 0.80, "real_only": 0.79, "effect": 0.01, "ci_low": -0.04,
         "ci_high": 0.06, "p_value": 0.41, "p_holm": 0.41, "repeats": 3, "note": None},
        {"trial_id": "s3", "twin_trial_id": None, "synthetic": "ddpm x0.25 add", "real_fraction": 1.0,
         "epochs_compared": None, "with_synthetic": None, "real_only": None, "effect": None, "ci_low": None,
         "ci_high": None, "p_value": None, "p_holm": None, "repeats": None, "note": "the twin has no result"},
    ]).to_csv(folder / "synthetic_effect.csv", index=False)
    pd.DataFrame([
        {"generator": "oversample", "settings_hash": "939ea1969795", "fit_subset": None, "pool_key": "oversample--939",
         "class": klass, "images": images, "memorized_share": share, "label_fidelity": fidelity}
        for klass, images, share, fidelity in (("all", 400, 0.13, 0.88), ("0", 200, 0.2, 0.61), ("1", 200, 0.05, 0.99))
    ]).to_csv(folder / "synthetic_quality.csv", index=False)
    return record


def interval(mean: float, low: float, high: float) -> dict:
    return {"mean": mean, "ci_low": low, "ci_high": high, "per_seed": [low, mean, high]}


def write_test_metrics(folder: Path, effect_on_test: dict | None) -> None:
    document = {
        "trial_id": "s1", "finalist_trial_id": "f1", "config": CONFIG, "test_balanced_accuracy": 0.5,
        "seeds": [1000, 1001, 1002],
        "finalists": [
            {"role": "best real-only", "search_trial_id": "r1", "finalist_trial_id": "f2", "synthetic": False,
             "seeds": [1000, 1001, 1002], "config": {**CONFIG, "synthetic.proportion": 0.0},
             "test": {"balanced_accuracy": interval(0.7, 0.6, 0.8)}},
            {"role": "top 1", "search_trial_id": "s1", "finalist_trial_id": "f1", "synthetic": True,
             "seeds": [1000, 1001, 1002], "config": CONFIG,
             "test": {"balanced_accuracy": interval(0.8123, 0.7901, 0.8346), "auroc": interval(0.9012, 0.8811, 0.9213),
                      "f1_macro": interval(0.7777, 0.7001, 0.8553)}},
        ],
        "mcnemar": {"note": "not computed: no real-only finalist was evaluated", "method": "McNemar"},
    }
    if effect_on_test is not None:
        document["synthetic_effect_on_test"] = effect_on_test
    (folder / "test_metrics.json").write_text(json.dumps(document))


def metric(effect: float, low: float | None, high: float | None, p_value: float | None, note: str = "") -> dict:
    return {"effect": effect, "ci_low": low, "ci_high": high, "p_value": p_value, "repeats": 3, "note": note}


EFFECT_ON_TEST = {
    "synthetic_trial_id": "f1", "twin_trial_id": "f9", "seeds": [1000, 1001, 1002],
    "method": "paired t interval and paired t-test on the per-seed differences", "coverage": "with 3 pairs, ...",
    "metrics": {
        "balanced_accuracy": metric(0.06, 0.02, 0.10, 0.011),
        "auroc": metric(0.01, -0.03, 0.05, 0.38),
        "f1_0": metric(0.04, None, None, None, "the twin's seed 1002 has no test prediction"),
    },
}


def page_of(folder: Path) -> str:
    return render(ReportContext(folder, SweepRecord.read(folder)), SECTIONS)


def answer_text(page: str) -> str:
    """The first section's words, tags removed."""
    assert page.index('<section id="section-1"><h2>1. The answer</h2>') < page.index("2. The question and the dataset")
    section = page.split('<section id="section-1">', 1)[1].split("</section>", 1)[0]
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", section)))


def test_the_answer_comes_first_with_test_metrics_and_an_effect_that_excludes_zero(tmp_path: Path) -> None:
    record_folder(tmp_path)
    write_test_metrics(tmp_path, EFFECT_ON_TEST)
    text = answer_text(page_of(tmp_path))
    assert "search trial s1" in text and "finalist trial f1" in text and "1000, 1001, 1002" in text
    # The best finalist's entry (matched by finalist_trial_id), not the first one, and not the top-level median.
    assert "balanced accuracy 0.812 [0.790, 0.835]" in text and "AUROC 0.901 [0.881, 0.921]" in text
    assert "macro F1 0.778 [0.700, 0.855]" in text and "0.700 [0.600" not in text
    assert "oversample generator" in text and "proportion 0.5" in text and "(mode add)" in text
    # On the test split: one interval excludes zero, one contains it, one has none and says why.
    assert "for the best configuration itself: finalist trial f1 against its real-only twin f9" in text
    assert "balanced accuracy +0.060 [+0.020, +0.100] at 3 seeds (p = 0.011): synthetic images helped" in text
    assert "AUROC indistinguishable from zero at 3 seeds: [-0.030, +0.050] (difference +0.010, p = 0.380)" in text
    assert "F1 of class 0 +0.040, no interval: the twin's seed 1002 has no test prediction" in text
    # Across the search: the best row by effect, how many intervals exclude zero, and why a row has none.
    assert "1 of the 2 measured configurations have an interval that excludes zero (1 helped, 0 hurt)" in text
    assert "oversample x0.5 add at real fraction 0.6: +0.069 [+0.031, +0.107] at 3 seeds (p = 0.012)" in text
    assert "Holm-corrected p = 0.024" in text and "1 with no effect: the twin has no result" in text
    # Quality of the best configuration's generator, over all classes, and its weakest class.
    assert "13% are memorized near-copies" in text and "88% of them their own label" in text
    assert "lowest for class 0 (61%)" in text


def test_an_effect_on_test_that_contains_zero_is_called_indistinguishable(tmp_path: Path) -> None:
    record_folder(tmp_path)
    effect = {**EFFECT_ON_TEST, "synthetic_trial_id": "f3",
              "metrics": {"balanced_accuracy": metric(-0.011, -0.052, 0.030, 0.41)}}
    write_test_metrics(tmp_path, effect)
    text = answer_text(page_of(tmp_path))
    assert ("balanced accuracy indistinguishable from zero at 3 seeds: [-0.052, +0.030] "
            "(difference -0.011, p = 0.410)") in text
    assert "for the best synthetic finalist (not the best configuration): finalist trial f3" in text
    assert "helped" not in text.split("Across the search")[0]


@pytest.mark.parametrize(("effect", "said"), [
    ({"note": "not computed: the twin of the best synthetic finalist trained no epoch"},
     "on the test split : not computed: the twin of the best synthetic finalist trained no epoch."),
    (None, "on the test split : not recorded (this test_metrics.json has no synthetic_effect_on_test"),
])
def test_an_effect_on_test_not_computed_or_absent_says_so(tmp_path: Path, effect: dict | None, said: str) -> None:
    record_folder(tmp_path)
    write_test_metrics(tmp_path, effect)
    text = answer_text(page_of(tmp_path))
    assert said in text and "balanced accuracy 0.812 [0.790, 0.835]" in text


def test_without_finalists_the_answer_says_why_and_gives_the_search_answer(tmp_path: Path) -> None:
    reason = "no finalist trained an epoch within the time budget"
    record_folder(tmp_path, {"finalists": reason, "quality": "ValueError: no real-only finalist trained an epoch"})
    (tmp_path / "synthetic_quality.csv").unlink()
    text = answer_text(page_of(tmp_path))
    assert f"The finalists did not run on the test split: {reason}." in text and "validation split only" in text
    assert "search trial s1" in text and "val_balanced_accuracy 0.871 (spread 0.011 over 3 repeat seeds)" in text
    assert "oversample generator" in text and "Test split" not in text
    assert "not computed: ValueError: no real-only finalist trained an epoch" in text


def test_a_real_only_answer_and_one_no_trial_reached(tmp_path: Path) -> None:
    record_folder(tmp_path)
    write_test_metrics(tmp_path, EFFECT_ON_TEST)
    document = json.loads((tmp_path / "test_metrics.json").read_text())
    document["config"] = {**CONFIG, "synthetic.proportion": 0.0}
    (tmp_path / "test_metrics.json").write_text(json.dumps(document))
    text = answer_text(page_of(tmp_path))
    assert "Synthetic images : none, real only" in text and "the best configuration uses none" in text
    (tmp_path / "test_metrics.json").unlink()
    (tmp_path / "leaderboard.csv").unlink()
    assert "No trial reported a result either" in answer_text(page_of(tmp_path))


def test_every_table_sits_in_a_box_that_scrolls_sideways(tmp_path: Path) -> None:
    record_folder(tmp_path)
    write_test_metrics(tmp_path, EFFECT_ON_TEST)
    page = page_of(tmp_path)
    assert page.count("<table>") >= 4
    assert page.count("<table>") == page.count('<div class="table-box"><table>') == page.count("</table></div>")
    assert re.search(r"\.table-box \{[^}]*overflow-x: auto", page)


def wide_report(folder: Path) -> str:
    record_folder(folder)
    write_test_metrics(folder, EFFECT_ON_TEST)
    # The Pareto section shows every column of pareto_front.csv, as a sweep with many searched settings writes it.
    front = pd.DataFrame({"rank": [1, 2], "trial_id": ["s1", "r1"], "cost_seconds": [12.5, 30.25]})
    for index in range(40):
        front[f"synthetic.settings.a_rather_long_setting_{index}"] = [0.123456 * index, 1.5]
    front.to_csv(folder / "pareto_front.csv", index=False)
    return page_of(folder)


def page_widths(page: str, folder: Path) -> tuple[int, int]:
    """(scrollWidth, clientWidth) of the page in headless Chromium at a 1280 px window, after it loaded."""
    probe = folder / "probe.html"
    script = ("<script>window.addEventListener('load', function () { document.body.setAttribute('data-widths', "
              "document.documentElement.scrollWidth + ' ' + document.documentElement.clientWidth); });</script>")
    probe.write_text(page.replace("</body>", f"{script}</body>"))
    done = subprocess.run(
        [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,2000",
         f"--user-data-dir={folder / 'profile'}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'data-widths="(\d+) (\d+)"', done.stdout)
    assert found, f"chromium printed no widths (exit {done.returncode}): {done.stderr[-2000:]}"
    return int(found.group(1)), int(found.group(2))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (headless) on the PATH")
def test_a_wide_table_does_not_widen_the_page_in_a_browser(tmp_path: Path) -> None:
    page = wide_report(tmp_path)
    scroll, client = page_widths(page, tmp_path)
    assert 1200 <= client <= 1280 and scroll <= client
    # The check sees an overflow when there is one: the same page with boxes that do not scroll runs off.
    unboxed = page.replace("overflow-x: auto", "overflow-x: visible")
    assert unboxed != page
    scroll, client = page_widths(unboxed, tmp_path)
    assert scroll > client
