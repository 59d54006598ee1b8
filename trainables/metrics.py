"""Validation and test metrics of a classifier, from its logits, as one flat dict of floats for Tune to report."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import torch
import torchmetrics
from torch import Tensor
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCohenKappa,
    MulticlassF1Score,
    MulticlassRecall,
)
from torchmetrics.functional.classification import multiclass_auroc

from trainables.errors import TrainableInputError

METRIC_NAMES: tuple[str, ...] = ("loss", "accuracy", "balanced_accuracy", "f1_macro", "auroc", "kappa")

PER_CLASS_RECALL = "recall_per_class"
PER_CLASS_F1 = "f1_per_class"
PER_CLASS_METRICS = {"recall": PER_CLASS_RECALL, "f1": PER_CLASS_F1}
"""Metrics reported per class as `<name>_<class name>`, and as `<name>_minority` for the class with the fewest
training images (Lan 2024 ranked by the minority class's F1): a metric name a preset can use on any dataset."""
MINORITY = "minority"


class MetricsError(TrainableInputError):
    """Predictions, labels or class names that do not describe the same classification problem."""


def sanitize_class_name(class_name: str) -> str:
    """A class name as it may appear in a metric name: lowercase, runs of other characters as one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", class_name.lower()).strip("_")


def build_metrics(num_classes: int, ordinal: bool) -> torchmetrics.MetricCollection:
    """The metrics of METRIC_NAMES (loss excepted) plus per-class recall and F1; update them with softmax probabilities.

    Balanced accuracy is macro recall. Kappa is quadratically weighted for ordinal classes (disease grades),
    where predicting a neighbouring grade is a smaller error than a distant one.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise MetricsError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return torchmetrics.MetricCollection(
        {
            "accuracy": MulticlassAccuracy(num_classes, average="micro"),
            "balanced_accuracy": MulticlassRecall(num_classes, average="macro"),
            "f1_macro": MulticlassF1Score(num_classes, average="macro"),
            "auroc": MulticlassAUROC(num_classes, average="macro"),
            "kappa": MulticlassCohenKappa(num_classes, weights="quadratic" if ordinal else None),
            PER_CLASS_RECALL: MulticlassRecall(num_classes, average=None),
            PER_CLASS_F1: MulticlassF1Score(num_classes, average=None),
        }
    )


def compute_metrics(
    logits: Tensor,
    labels: Tensor,
    *,
    num_classes: int,
    ordinal: bool,
    class_names: Sequence[str],
    loss: float,
    minority_class: int | None = None,
) -> dict[str, float]:
    """METRIC_NAMES plus `recall_<class name>` and `f1_<class name>` per class (names reduced to [a-z0-9_]), as
    Python floats.

    A class absent from `labels` has no recall and no one-vs-rest AUROC (torchmetrics would score it 0):
    balanced accuracy and AUROC then average over the classes present, as scikit-learn's balanced accuracy does;
    its `recall_<class>` and `f1_<class>` are NaN, and AUROC is NaN when fewer than two classes are present.
    With `minority_class` (an index), its recall and F1 are repeated as `recall_minority` and `f1_minority`.
    """
    metric_names_of_classes = _metric_names_of_classes(class_names, num_classes)
    _check_predictions(logits, labels, num_classes)
    # Softmax here rather than inside torchmetrics: it applies one only when some value falls outside [0, 1].
    probabilities = torch.softmax(logits.detach().float(), dim=1)
    present = torch.bincount(labels, minlength=num_classes) > 0
    with warnings.catch_warnings():
        # torchmetrics warns about each absent class on every call; the docstring says how they are handled.
        warnings.filterwarnings("ignore", message=".*(positive|negative) samples in targets.*")
        computed = build_metrics(num_classes, ordinal)(probabilities, labels)
        if not bool(present.all()):
            per_class_recall = computed[PER_CLASS_RECALL].masked_fill(~present, float("nan"))
            computed[PER_CLASS_RECALL] = per_class_recall
            computed[PER_CLASS_F1] = computed[PER_CLASS_F1].masked_fill(~present, float("nan"))
            computed["balanced_accuracy"] = per_class_recall[present].mean()
            per_class_auroc = multiclass_auroc(probabilities, labels, num_classes, average="none")
            computed["auroc"] = per_class_auroc[present].mean() if int(present.sum()) >= 2 else torch.tensor(float("nan"))
    flat: dict[str, float] = {"loss": float(loss)}
    for name in METRIC_NAMES[1:]:
        flat[name] = float(computed[name])
    for prefix, collection_name in PER_CLASS_METRICS.items():
        values = computed[collection_name].tolist()
        for class_metric_name, value in zip(metric_names_of_classes, values, strict=True):
            flat[f"{prefix}_{class_metric_name}"] = float(value)
        if minority_class is not None:
            flat[f"{prefix}_{MINORITY}"] = float(values[minority_class])
    return flat


def _metric_names_of_classes(class_names: Sequence[str], num_classes: int) -> list[str]:
    if len(class_names) != num_classes:
        raise MetricsError(f"class_names has {len(class_names)} names ({list(class_names)}) but num_classes is {num_classes}")
    sanitized = [sanitize_class_name(name) for name in class_names]
    for original, name in zip(class_names, sanitized):
        if not name:
            raise MetricsError(f"class name {original!r} has no letters or digits, so it cannot name a metric")
    if len(set(sanitized)) != len(sanitized):
        raise MetricsError(
            f"class names {list(class_names)} collide once reduced to [a-z0-9_] ({sanitized}); rename them apart"
        )
    return sanitized


def _check_predictions(logits: Tensor, labels: Tensor, num_classes: int) -> None:
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise MetricsError(f"logits must have shape [N, {num_classes}], got {list(logits.shape)}")
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise MetricsError(f"labels must have shape [{logits.shape[0]}] to match the logits, got {list(labels.shape)}")
    if labels.shape[0] == 0:
        raise MetricsError("there are no samples to compute metrics on (0 labels)")
    if labels.dtype != torch.int64:
        raise MetricsError(f"labels must be int64 class indices, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise MetricsError(
            f"labels must lie in [0, {num_classes - 1}], got values from {int(labels.min())} to {int(labels.max())}"
        )
