"""Training and evaluation on CPU: a separable toy problem is learnt, epochs replay exactly, settings are checked."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainables.backbones import create_backbone, input_normalization
from trainables.errors import TrainableInputError
from trainables.metrics import METRIC_NAMES
from trainables.training import (
    class_weights,
    create_loss,
    create_optimizer,
    epoch_batches,
    evaluate,
    mixed_precision_dtype,
    predict_logits,
    resolve_device,
    to_model_input,
    train_one_epoch,
)
from trainables.trial import aggregate_over_repeats
from trainables.tune_reporting import CheckpointSchedule

CPU = torch.device("cpu")
NORMALIZATION = ((0.5,), (0.5,))
CLASS_NAMES = ("dark", "bright")


# Tiny models: on a machine shared with other jobs, two torch threads that wait on each other are slower than one.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def squares_dataset(count: int, seed: int, image_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy gray 16x16 images with a 6x6 square: black for class 0, white for class 1, anywhere in the image."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (count,), generator=generator)
    images = torch.randint(40, 100, (count, 1, image_size, image_size), generator=generator, dtype=torch.uint8)
    for index in range(count):
        top, left = torch.randint(0, image_size - 6, (2,), generator=generator).tolist()
        images[index, 0, top : top + 6, left : left + 6] = 255 if labels[index] == 1 else 0
    return images, labels


def train_basic_cnn(seed: int, epochs: int) -> tuple[nn.Module, list[float], dict[str, float]]:
    train_images, train_labels = squares_dataset(256, seed=1)
    validation_images, validation_labels = squares_dataset(128, seed=2)
    torch.manual_seed(seed)
    model = create_backbone("basic_cnn", num_classes=2, in_channels=1, image_size=16)
    optimizer = create_optimizer("adam", model.parameters(), lr=3e-3, weight_decay=0.0)
    loss_function = create_loss(label_smoothing=0.0, weights=None)
    normalization = input_normalization("basic_cnn", 1, pretrained=False)
    losses = []
    for epoch in range(epochs):
        batches = epoch_batches(train_labels, batch_size=32, imbalance="none", generator=torch.Generator().manual_seed(epoch))
        losses.append(
            train_one_epoch(
                model, train_images, train_labels, batches=batches, optimizer=optimizer,
                loss_function=loss_function, normalization=normalization, device=CPU,
            )
        )
    metrics = evaluate(
        model, validation_images, validation_labels, normalization=normalization, device=CPU,
        num_classes=2, ordinal=False, class_names=CLASS_NAMES,
    )
    return model, losses, metrics


def test_basic_cnn_learns_a_separable_problem() -> None:
    _, losses, metrics = train_basic_cnn(seed=0, epochs=3)
    assert losses[-1] < losses[0]
    assert metrics["accuracy"] > 0.9


def test_same_seed_trains_the_same_weights() -> None:
    first, first_losses, _ = train_basic_cnn(seed=7, epochs=2)
    second, second_losses, _ = train_basic_cnn(seed=7, epochs=2)
    assert first_losses == second_losses
    for (name, first_weight), second_weight in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(first_weight, second_weight), name


def test_evaluate_reports_every_metric_and_restores_nothing() -> None:
    images, labels = squares_dataset(16, seed=3)
    model = create_backbone("basic_cnn", num_classes=2, in_channels=1, image_size=16)
    metrics = evaluate(
        model, images, labels, normalization=NORMALIZATION, device=CPU, num_classes=2, ordinal=False, class_names=CLASS_NAMES
    )
    assert set(metrics) == {*METRIC_NAMES, "recall_dark", "recall_bright", "f1_dark", "f1_bright"}
    assert not model.training  # putting it back in train mode is the caller's business


def test_evaluate_loss_is_plain_cross_entropy() -> None:
    images, labels = squares_dataset(16, seed=3)
    model = create_backbone("basic_cnn", num_classes=2, in_channels=1, image_size=16)
    logits = predict_logits(model, images, normalization=NORMALIZATION, device=CPU)
    metrics = evaluate(
        model, images, labels, normalization=NORMALIZATION, device=CPU, num_classes=2, ordinal=False, class_names=CLASS_NAMES
    )
    assert metrics["loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, labels)))


def test_predictions_do_not_depend_on_the_batch_size() -> None:
    images, _ = squares_dataset(10, seed=4)
    model = create_backbone("test_resnet", num_classes=3, in_channels=1, image_size=16)
    whole = predict_logits(model, images, normalization=NORMALIZATION, device=CPU)
    in_threes = predict_logits(model, images, normalization=NORMALIZATION, device=CPU, batch_size=3)
    assert whole.dtype == torch.float32 and whole.shape == (10, 3)
    torch.testing.assert_close(whole, in_threes)


def test_augmentation_sees_each_uint8_batch() -> None:
    images, labels = squares_dataset(20, seed=5)
    seen: list[torch.Tensor] = []

    def record(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch)
        return batch.flip(-1)

    model = create_backbone("basic_cnn", num_classes=2, in_channels=1, image_size=16)
    batches = epoch_batches(labels, batch_size=8, imbalance="none", generator=torch.Generator().manual_seed(0))
    train_one_epoch(
        model, images, labels, batches=batches, optimizer=create_optimizer("sgd", model.parameters(), lr=0.01, weight_decay=0.0),
        loss_function=create_loss(label_smoothing=0.0, weights=None), normalization=NORMALIZATION, device=CPU, augment=record,
    )
    assert [len(batch) for batch in seen] == [8, 8, 4]
    assert all(batch.dtype == torch.uint8 for batch in seen)


def test_balanced_sampler_draws_classes_equally_from_nine_to_one_labels() -> None:
    labels = torch.tensor([0] * 900 + [1] * 100)
    batches = epoch_batches(labels, batch_size=64, imbalance="balanced_sampler", generator=torch.Generator().manual_seed(0))
    drawn = labels[torch.cat(batches)]
    assert len(drawn) == 1000
    assert 0.45 < drawn.float().mean() < 0.55


@pytest.mark.parametrize("imbalance", ["none", "class_weighted_loss"])
def test_unbalanced_epochs_visit_every_sample_once(imbalance: str) -> None:
    labels = torch.tensor([0] * 90 + [1] * 10)
    batches = epoch_batches(labels, batch_size=32, imbalance=imbalance, generator=torch.Generator().manual_seed(0))
    assert [len(batch) for batch in batches] == [32, 32, 32, 4]
    assert torch.equal(torch.cat(batches).sort().values, torch.arange(100))


def test_epoch_batches_drop_a_last_batch_of_one_and_replay_from_the_generator() -> None:
    labels = torch.zeros(65, dtype=torch.int64)
    first = epoch_batches(labels, batch_size=32, imbalance="none", generator=torch.Generator().manual_seed(3))
    again = epoch_batches(labels, batch_size=32, imbalance="none", generator=torch.Generator().manual_seed(3))
    assert [len(batch) for batch in first] == [32, 32]
    assert all(torch.equal(batch, replayed) for batch, replayed in zip(first, again, strict=True))


def test_class_weights_are_inverse_frequency_with_mean_one_over_samples() -> None:
    labels = torch.tensor([0, 0, 0, 1])
    weights = class_weights(labels, num_classes=3)
    torch.testing.assert_close(weights, torch.tensor([2 / 3, 2.0, 0.0]))
    assert float(weights[labels].mean()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "optimizer_type"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)]
)
def test_optimizers_by_name(name: str, optimizer_type: type) -> None:
    optimizer = create_optimizer(name, nn.Linear(2, 2).parameters(), lr=0.1, weight_decay=0.01, momentum=0.8)
    assert type(optimizer) is optimizer_type
    assert optimizer.param_groups[0]["lr"] == 0.1 and optimizer.param_groups[0]["weight_decay"] == 0.01
    if name == "sgd":
        assert optimizer.param_groups[0]["nesterov"] and optimizer.param_groups[0]["momentum"] == 0.8


def test_label_smoothing_changes_the_loss_of_confident_predictions() -> None:
    logits = torch.tensor([[4.0, -4.0], [-4.0, 4.0]])
    labels = torch.tensor([0, 1])
    plain = create_loss(label_smoothing=0.0, weights=None)(logits, labels)
    smoothed = create_loss(label_smoothing=0.2, weights=None)(logits, labels)
    assert float(smoothed) > float(plain)


def test_class_weighted_loss_counts_the_rare_class_more() -> None:
    logits = torch.zeros(4, 2)
    logits[3, 0] = 2.0  # the one rare-class sample is misclassified
    labels = torch.tensor([0, 0, 0, 1])
    plain = create_loss(label_smoothing=0.0, weights=None)(logits, labels)
    weighted = create_loss(label_smoothing=0.0, weights=class_weights(labels, 2))(logits, labels)
    assert float(weighted) > float(plain)


def test_model_input_is_normalised_float() -> None:
    images = torch.tensor([0, 255], dtype=torch.uint8).reshape(1, 1, 1, 2)
    assert to_model_input(images, (0.5,), (0.5,)).tolist() == [[[[-1.0, 1.0]]]]


def test_device_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == CPU
    assert resolve_device("cpu") == CPU
    assert mixed_precision_dtype(CPU) is None
    with pytest.raises(TrainableInputError, match="device 'cuda' was asked for but CUDA is not available"):
        resolve_device("cuda")


def test_grad_scaler_path_trains_like_the_plain_one() -> None:
    """The float16 branch on a GPU steps through the scaler; a CPU scaler exercises the same calls here."""
    images, labels = squares_dataset(32, seed=6)

    def train(grad_scaler: torch.amp.GradScaler | None) -> tuple[float, nn.Module]:
        torch.manual_seed(0)
        model = create_backbone("basic_cnn", num_classes=2, in_channels=1, image_size=16)
        loss = train_one_epoch(
            model, images, labels, batches=list(torch.arange(32).split(8)), normalization=NORMALIZATION, device=CPU,
            optimizer=create_optimizer("sgd", model.parameters(), lr=0.05, weight_decay=0.0),
            loss_function=create_loss(label_smoothing=0.0, weights=None), grad_scaler=grad_scaler,
        )
        return loss, model

    plain_loss, plain_model = train(None)
    scaled_loss, scaled_model = train(torch.amp.GradScaler("cpu"))
    assert scaled_loss == pytest.approx(plain_loss)
    for plain_weight, scaled_weight in zip(plain_model.parameters(), scaled_model.parameters()):
        torch.testing.assert_close(plain_weight, scaled_weight)


def checkpointed_epochs(schedule: CheckpointSchedule, best_epochs: list[int]) -> list[tuple[int, bool]]:
    """(epoch, with training state) of every checkpoint a trial whose best epoch so far after each epoch is
    `best_epochs` writes."""
    written = []
    for epoch, best in enumerate(best_epochs, start=1):
        finished = epoch == schedule.planned_epochs
        if schedule.wants(epoch, best, finished):
            state = schedule.holds_state(epoch, finished)
            written.append((epoch, state))
            schedule.wrote(best, epoch, state)
    return written


def test_a_trial_checkpoints_a_new_best_where_its_scheduler_may_stop_it_and_at_its_end() -> None:
    # The metric improved at epochs 1, 3 and 7; ASHA may stop the trial after epochs 2 and 6.
    best_epochs = [1, 1, 3, 3, 3, 3, 7, 7]
    asha = CheckpointSchedule(every_epoch=False, planned_epochs=8, stopping_epochs=frozenset({2, 6}))
    assert checkpointed_epochs(asha, best_epochs) == [(2, False), (6, False), (8, False)]
    # No new best since the last checkpoint: the last epoch writes nothing more.
    no_news = CheckpointSchedule(every_epoch=False, planned_epochs=8, stopping_epochs=frozenset({2, 6}))
    assert checkpointed_epochs(no_news, [1, 1, 3, 3, 3, 3, 3, 3]) == [(2, False), (6, False)]
    # Without a scheduler the trial writes once, at its end.
    fifo = CheckpointSchedule(every_epoch=False, planned_epochs=8)
    assert checkpointed_epochs(fifo, best_epochs) == [(8, False)]
    # The training state every 3 epochs; the last checkpoint then replaces the state with the best weights.
    with_state = CheckpointSchedule(every_epoch=False, planned_epochs=8, stopping_epochs=frozenset({2, 6}), state_every=3)
    assert checkpointed_epochs(with_state, [1, 1, 3, 3, 3, 3, 3, 3]) == [(2, False), (3, True), (6, True), (8, False)]
    # PBT clones the latest checkpoints: every epoch, with the training state until the trial ends.
    every_epoch = CheckpointSchedule(every_epoch=True, planned_epochs=3)
    assert checkpointed_epochs(every_epoch, [1, 2, 3]) == [(1, True), (2, True), (3, False)]


def test_a_metric_nan_for_one_seed_is_nan_for_the_configuration_not_a_crash() -> None:
    # A diverged seed's loss is NaN: the trial goes on reporting, as a single-seed trial does.
    aggregated = aggregate_over_repeats([{"train_loss": 0.5, "val_auroc": 0.8}, {"train_loss": float("nan"), "val_auroc": 0.6}])
    assert math.isnan(aggregated["train_loss"]) and math.isnan(aggregated["train_loss_std"])
    assert aggregated["val_auroc"] == pytest.approx(0.7) and aggregated["val_auroc_std"] == pytest.approx(0.1)
