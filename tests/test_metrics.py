"""Classification metrics against values computed by hand on six samples of three classes."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.metrics import METRIC_NAMES, MetricsError, build_metrics, compute_metrics, sanitize_class_name

# Probabilities per sample; logits are their logs, so the softmax gives them back.
PROBABILITIES = torch.tensor(
    [
        [0.7, 0.2, 0.1],  # class 0, predicted 0
        [0.3, 0.6, 0.1],  # class 0, predicted 1
        [0.1, 0.8, 0.1],  # class 1, predicted 1
        [0.2, 0.5, 0.3],  # class 1, predicted 1
        [0.1, 0.3, 0.6],  # class 2, predicted 2
        [0.5, 0.1, 0.4],  # class 2, predicted 0
    ]
)
LOGITS = PROBABILITIES.log()
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])
CLASS_NAMES = ("Non Demented", "Very-Mild", "moderate")


def metrics_of(logits: torch.Tensor = LOGITS, labels: torch.Tensor = LABELS, *, ordinal: bool = False) -> dict[str, float]:
    return compute_metrics(logits, labels, num_classes=3, ordinal=ordinal, class_names=CLASS_NAMES, loss=0.25)


def test_metrics_match_hand_computed_values() -> None:
    metrics = metrics_of()
    assert metrics["loss"] == 0.25
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # Recall per class: 1/2, 2/2, 1/2.
    assert metrics["balanced_accuracy"] == pytest.approx(2 / 3)
    # Precision per class 1/2, 2/3, 1 -> F1 per class 1/2, 4/5, 2/3.
    assert metrics["f1_macro"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    # One-vs-rest: 7 of 8 positive/negative pairs ranked right for classes 0 and 1, all 8 for class 2.
    assert metrics["auroc"] == pytest.approx((7 / 8 + 7 / 8 + 1) / 3)
    # Observed agreement 4/6, chance agreement (2*2 + 2*3 + 2*1) / 36 = 1/3.
    assert metrics["kappa"] == pytest.approx(0.5)


def test_ordinal_kappa_weighs_distant_grades_quadratically() -> None:
    # Disagreement weights (i-j)^2/4: observed 0.25 + 1 = 1.25, expected by chance 1.75.
    assert metrics_of(ordinal=True)["kappa"] == pytest.approx(1 - 1.25 / 1.75)


def test_flat_dict_has_every_metric_and_a_recall_and_f1_per_sanitised_class_name() -> None:
    metrics = metrics_of()
    classes = ["non_demented", "very_mild", "moderate"]
    assert list(metrics) == [*METRIC_NAMES, *(f"recall_{name}" for name in classes), *(f"f1_{name}" for name in classes)]
    assert [metrics[f"recall_{name}"] for name in classes] == pytest.approx([0.5, 1.0, 0.5])
    # The per-class F1 the macro F1 above averages.
    assert [metrics[f"f1_{name}"] for name in classes] == pytest.approx([1 / 2, 4 / 5, 2 / 3])
    assert all(type(value) is float for value in metrics.values())


def test_the_minority_class_is_also_reported_under_a_name_any_dataset_has() -> None:
    metrics = compute_metrics(LOGITS, LABELS, num_classes=3, ordinal=False, class_names=CLASS_NAMES, loss=0.0, minority_class=1)
    assert (metrics["recall_minority"], metrics["f1_minority"]) == (metrics["recall_very_mild"], metrics["f1_very_mild"])
    assert "f1_minority" not in metrics_of()


def test_two_classes_use_two_logits() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    metrics = compute_metrics(logits, labels, num_classes=2, ordinal=False, class_names=["normal", "pneumothorax"], loss=0.0)
    assert metrics["accuracy"] == pytest.approx(3 / 4)
    assert metrics["recall_pneumothorax"] == pytest.approx(1 / 2)
    # p(pneumothorax): positives 0.73, 0.27; negatives 0.12, 0.38 -> 3 of 4 pairs ranked right.
    assert metrics["auroc"] == pytest.approx(3 / 4)


def test_class_absent_from_labels_is_left_out_of_the_averages() -> None:
    labels = torch.tensor([0, 0, 1, 1, 1, 0])  # no class 2
    metrics = metrics_of(labels=labels)
    # Recall of class 0: samples 0, 1, 5 -> predicted 0, 1, 0; of class 1: samples 2, 3, 4 -> 1, 1, 2.
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert math.isnan(metrics["recall_moderate"]) and math.isnan(metrics["f1_moderate"])
    # Class 0 positives 0.7, 0.3, 0.5 vs negatives 0.1, 0.2, 0.1: 9/9. Class 1 positives 0.8, 0.5, 0.3 vs
    # negatives 0.2, 0.6, 0.1: 0.8 beats 3, 0.5 beats 2, 0.3 beats 2 -> 7/9.
    assert metrics["auroc"] == pytest.approx((1 + 7 / 9) / 2)


def test_single_class_in_labels_has_no_auroc() -> None:
    metrics = metrics_of(labels=torch.zeros(6, dtype=torch.int64))
    assert math.isnan(metrics["auroc"])
    assert metrics["accuracy"] == pytest.approx(2 / 6)


def test_build_metrics_weights_kappa_only_for_ordinal_classes() -> None:
    assert build_metrics(3, ordinal=True)["kappa"].weights == "quadratic"
    assert build_metrics(3, ordinal=False)["kappa"].weights is None
    assert set(build_metrics(3, ordinal=False).keys()) == {*METRIC_NAMES[1:], "recall_per_class", "f1_per_class"}


def test_sanitize_class_name() -> None:
    assert sanitize_class_name("Mild Demented") == "mild_demented"
    assert sanitize_class_name("VHS > 10.5 (large)") == "vhs_10_5_large"


@pytest.mark.parametrize(
    ("logits", "labels", "class_names", "message"),
    [
        (LOGITS, LABELS, ("a", "b"), r"class_names has 2 names \(\['a', 'b'\]\) but num_classes is 3"),
        (LOGITS, LABELS, ("Mild", "mild", "x"), r"class names \['Mild', 'mild', 'x'\] collide"),
        (LOGITS, LABELS, ("a", "b", "--"), "class name '--' has no letters or digits"),
        (LOGITS[:, :2], LABELS, CLASS_NAMES, r"logits must have shape \[N, 3\], got \[6, 2\]"),
        (LOGITS, LABELS[:5], CLASS_NAMES, r"labels must have shape \[6\].*got \[5\]"),
        (LOGITS, LABELS + 1, CLASS_NAMES, r"labels must lie in \[0, 2\], got values from 1 to 3"),
        (LOGITS, LABELS.int(), CLASS_NAMES, "labels must be int64 class indices, got dtype torch.int32"),
    ],
)
def test_inconsistent_inputs_are_named(
    logits: torch.Tensor, labels: torch.Tensor, class_names: tuple[str, ...], message: str
) -> None:
    with pytest.raises(MetricsError, match=message):
        compute_metrics(logits, labels, num_classes=3, ordinal=False, class_names=class_names, loss=0.0)
