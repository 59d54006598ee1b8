"""Classifier fine-tuning modes on tiny timm models with local weights: frozen and LoRA train only what they should,
multi-layer heads, the per-epoch lr schedule, early stopping, checkpoints reloading every mode, and a real sweep."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import peft
import pytest
import torch
from torch import nn

from search.settings.sweep_checks import check_space
from search.tuning.searchers import DefineByRunSpace, grid_points
from spaces import ConfigError, SearchSpace, TrialConfig
from spaces.schema import ModelConfig
from trainables.backbones import create_backbone
from trainables.checkpoint_evaluation import evaluate_checkpoint
from trainables.datasets import SearchData, load_dataset
from trainables.fine_tuning import ClassifierWithHead, create_classifier, lora_target_modules, trainable_parameters
from trainables.replicas import build_model, build_replica, load_saved_trial, normalization_of, save_replicas
from trainables.training import LearningRateFactor, create_lr_scheduler, predict_logits, train_one_epoch
from trainables.trial import EarlyStopping, TrialSettings, train_classifier

CPU = torch.device("cpu")
# Logits of a model whose weights were stored in float16 (trainables.replicas.stored_weights).
FLOAT16 = {"rtol": 2e-3, "atol": 2e-4}
IMAGE_SIZE = 16
NUM_CLASSES = 3


# Tiny models: on a machine shared with other jobs, two torch threads that wait on each other are slower than one.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Local 'pretrained' weights per backbone (nothing can be downloaded): a freshly built model's state dict."""
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for name in ("basic_cnn", "test_resnet", "test_vit"):
        torch.manual_seed(0)
        model = create_backbone(name, num_classes=NUM_CLASSES, in_channels=1, image_size=IMAGE_SIZE)
        paths[name] = str(folder / f"{name}.pth")
        torch.save(model.state_dict(), paths[name])
    return paths


@pytest.fixture(scope="module")
def phantom() -> SearchData:
    return load_dataset("phantom", image_size=IMAGE_SIZE, phantom_count=200).for_search()


def classifier(weights: dict[str, str], name: str, **settings: object) -> nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(backbone=name, pretrained_path=weights[name], **settings)
    return create_classifier(config, num_classes=NUM_CLASSES, in_channels=1, image_size=IMAGE_SIZE)


def one_training_step(model: nn.Module, lr: float = 0.1) -> None:
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (8, 1, IMAGE_SIZE, IMAGE_SIZE), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, NUM_CLASSES, (8,), generator=generator)
    train_one_epoch(
        model, images, labels, batches=[torch.arange(8)], normalization=((0.5,), (0.5,)), device=CPU,
        optimizer=torch.optim.SGD(trainable_parameters(model), lr=lr), loss_function=nn.CrossEntropyLoss(),
    )


def changed_entries(before: dict[str, torch.Tensor], model: nn.Module) -> set[str]:
    return {key for key, value in model.state_dict().items() if not torch.equal(before[key], value)}


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
def test_frozen_mode_changes_only_the_head_and_keeps_batchnorm_statistics(weights: dict[str, str], name: str) -> None:
    model = classifier(weights, name, finetune="frozen")
    before = snapshot(model)
    one_training_step(model)
    changed = changed_entries(before, model)
    # The head's weights change; nothing of the backbone does, its BatchNorm running statistics included.
    assert changed == {key for key, _ in model.head.named_parameters(prefix="head")}
    assert model.training and not model.backbone.training  # frozen parts stay in eval mode while training
    if name == "test_resnet":
        assert any("running_mean" in key for key in before if key.startswith("backbone."))


@pytest.mark.parametrize(("name", "adapted_type"), [("test_resnet", nn.Conv2d), ("test_vit", nn.Linear)])
def test_lora_trains_only_adapters_and_head_with_the_count_peft_gives(
    weights: dict[str, str], name: str, adapted_type: type[nn.Module]
) -> None:
    model = classifier(weights, name, finetune="lora", lora_rank=4)
    assert isinstance(model, ClassifierWithHead) and isinstance(model.backbone, peft.PeftModel)
    trainable_names = {key for key, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable_names and all(".lora_" in key or key.startswith("head.") for key in trainable_names)
    peft_trainable, _ = model.backbone.get_nb_trainable_parameters()
    head_parameters = sum(parameter.numel() for parameter in model.head.parameters())
    assert sum(parameter.numel() for parameter in trainable_parameters(model)) == peft_trainable + head_parameters
    adapted = model.backbone.targeted_module_names
    base = model.backbone.get_base_model()
    assert adapted and all(isinstance(base.get_submodule(target).base_layer, adapted_type) for target in adapted)
    if name == "test_vit":  # the attention and MLP projections, not the patch embedding's convolution
        assert {target.rsplit(".", 1)[-1] for target in adapted} == {"qkv", "proj", "fc1", "fc2"}

    before = snapshot(model)
    one_training_step(model)
    changed_parameters = {key for key in changed_entries(before, model) if key in dict(model.named_parameters())}
    assert changed_parameters <= trainable_names
    assert any(".lora_B" in key for key in changed_parameters) and any(key.startswith("head.") for key in changed_parameters)


def test_lora_targets_linear_layers_of_transformers_and_ungrouped_convolutions_of_cnns() -> None:
    vit = create_backbone("test_vit", num_classes=0, in_channels=1, image_size=IMAGE_SIZE)
    assert all(isinstance(vit.get_submodule(name), nn.Linear) for name in lora_target_modules(vit))
    efficientnet = create_backbone("efficientnet_b0", num_classes=0, in_channels=1, image_size=32)
    convolutions = [efficientnet.get_submodule(name) for name in lora_target_modules(efficientnet)]
    assert convolutions and all(isinstance(module, nn.Conv2d) and module.groups == 1 for module in convolutions)
    # The depthwise convolutions are left out.
    assert any(isinstance(module, nn.Conv2d) and module.groups > 1 for module in efficientnet.modules())


def test_a_multi_layer_head_has_the_requested_widths_on_timm_pooled_features(weights: dict[str, str]) -> None:
    model = classifier(weights, "test_resnet", head_hidden_layers=[16, 8], dropout=0.25)
    features = model.backbone.num_features
    linear = [(layer.in_features, layer.out_features) for layer in model.head if isinstance(layer, nn.Linear)]
    assert linear == [(features, 16), (16, 8), (8, NUM_CLASSES)]
    assert [layer.p for layer in model.head if isinstance(layer, nn.Dropout)] == [0.25, 0.25, 0.25]
    assert sum(isinstance(layer, nn.ReLU) for layer in model.head) == 2
    # Full fine-tuning trains the backbone too.
    assert all(parameter.requires_grad for parameter in model.parameters())
    pooled = model.backbone.eval()(torch.zeros(2, 1, IMAGE_SIZE, IMAGE_SIZE))
    assert pooled.shape == (2, features)


def test_without_head_layers_the_head_is_timms_own_classifier_with_its_loaded_weights(weights: dict[str, str]) -> None:
    plain = classifier(weights, "test_resnet")
    assert not isinstance(plain, ClassifierWithHead)  # full fine-tuning with timm's head: the timm model, unchanged
    frozen = classifier(weights, "test_resnet", finetune="frozen")
    torch.testing.assert_close(frozen.head[-1].weight, plain.get_classifier().weight)
    frozen.eval(), plain.eval()
    images = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(frozen(images), plain(images))


@pytest.mark.parametrize(("schedule", "warmup"), [("cosine", 2), ("cosine", 0), ("constant", 3)])
def test_lr_per_epoch_follows_the_schedule_and_a_resume_takes_a_mutated_lr(schedule: str, warmup: int) -> None:
    epochs, lr = 8, 0.01

    def expected(base: float, epoch: int) -> float:
        if epoch < warmup:
            return base * (epoch + 1) / (warmup + 1)
        if schedule == "constant":
            return base
        return base * 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup)))

    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    factor = LearningRateFactor(schedule, warmup, epochs)
    scheduler = create_lr_scheduler(optimizer, factor, base_lr=lr)
    seen = []
    for _ in range(epochs):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([expected(lr, epoch) for epoch in range(epochs)])
    assert min(seen) > 0
    # A resumed trial (PBT may have changed lr to 0.05) continues the schedule from the new rate at its epoch.
    resumed_optimizer = torch.optim.SGD([parameter], lr=lr)
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    create_lr_scheduler(resumed_optimizer, factor, base_lr=0.05, epochs_done=5)
    assert resumed_optimizer.param_groups[0]["lr"] == pytest.approx(expected(0.05, 5))


def test_early_stopping_counts_epochs_without_improvement() -> None:
    stopping = EarlyStopping("val_loss", "min", patience=2)
    decisions = [stopping.should_stop({"val_loss": loss}) for loss in [1.0, 0.8, 0.9, 0.8, float("nan")]]
    assert decisions == [False, False, False, True, True]
    assert stopping.best == 0.8
    never = EarlyStopping("val_loss", "min", patience=0)
    assert not any(never.should_stop({"val_loss": 1.0}) for _ in range(10))


def trial_config(weights: dict[str, str], **values: object) -> TrialConfig:
    base = {
        "model": {"backbone": "basic_cnn", "pretrained_path": weights["basic_cnn"]},
        "training": {"epochs": 2, "batch_size": 32},
    }
    for group, settings in values.items():
        base[group] = {**base.get(group, {}), **settings}
    return TrialConfig.from_mapping(base)


def test_training_stops_after_patience_epochs_without_improvement(weights: dict[str, str], phantom: SearchData) -> None:
    # A learning rate this small leaves every prediction as it is: the metric never improves after epoch 1.
    trial = trial_config(weights, optimizer={"lr": 1e-12}, training={"epochs": 10, "early_stopping_patience": 2})
    reports: list[dict[str, float]] = []
    train_classifier(trial, phantom, TrialSettings(), on_epoch=lambda metrics, *_: reports.append(metrics))
    assert [report["epoch"] for report in reports] == [1, 2, 3]
    assert "stopped_early" not in reports[1] and reports[-1]["stopped_early"] == 1.0
    assert reports[0]["val_balanced_accuracy"] == reports[2]["val_balanced_accuracy"]


@pytest.mark.parametrize(
    "model", [{"finetune": "frozen"}, {"finetune": "lora", "lora_rank": 2}, {"finetune": "full", "head_hidden_layers": [8]}]
)
def test_a_checkpoint_reloads_every_mode_with_identical_predictions(
    weights: dict[str, str], phantom: SearchData, model: dict, tmp_path: Path
) -> None:
    trial = trial_config(weights, model=model, optimizer={"schedule": "cosine", "warmup_epochs": 1})
    reports: list[dict[str, float]] = []
    replicas = train_classifier(trial, phantom, TrialSettings(), on_epoch=lambda metrics, *_: reports.append(metrics))
    save_replicas(tmp_path, replicas, 2, reports[-1], with_training_state=True)
    normalization = normalization_of(trial, phantom)
    images = torch.from_numpy(phantom.val.images.copy())
    trained = predict_logits(replicas[0].model, images, normalization=normalization, device=CPU)
    # The weights training continues from come back exactly; those kept for evaluation within float16's rounding.
    saved = load_saved_trial(tmp_path)
    for weights, tolerance in ((saved.training["replicas"][0]["model"], {}), (saved.replica_states[0]["model"], FLOAT16)):
        reloaded = build_model(trial, phantom)
        reloaded.load_state_dict(weights)
        logits = predict_logits(reloaded, images, normalization=normalization, device=CPU)
        torch.testing.assert_close(logits, trained, **tolerance)
    # The final evaluation's path gives the metrics the trial reported for the same images.
    metrics = evaluate_checkpoint(tmp_path, trial, phantom, phantom.val, device="cpu")
    assert metrics["balanced_accuracy"] == pytest.approx(reports[-1]["val_balanced_accuracy"])
    assert metrics["loss"] == pytest.approx(reports[-1]["val_loss"], rel=1e-3)


def test_a_replica_optimizes_only_trainable_parameters(weights: dict[str, str], phantom: SearchData) -> None:
    trial = trial_config(weights, model={"finetune": "frozen", "head_hidden_layers": [8]})
    replica = build_replica(trial, phantom, seed=0, device=CPU)
    optimized = {id(parameter) for group in replica.optimizer.param_groups for parameter in group["params"]}
    assert optimized == {id(parameter) for parameter in replica.model.head.parameters()}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"model": {"finetune": "frozen"}}, "model.finetune"),
        ({"model": {"finetune": "lora"}}, "model.finetune"),
        ({"model": {"finetune": "partial", "pretrained": True}}, "model.finetune"),
        ({"model": {"head_hidden_layers": [64, 0]}}, "model.head_hidden_layers"),
        ({"model": {"lora_rank": 0, "pretrained": True, "finetune": "lora"}}, "model.lora_rank"),
        ({"optimizer": {"schedule": "linear"}}, "optimizer.schedule"),
        ({"optimizer": {"warmup_epochs": 10}, "training": {"epochs": 10}}, "optimizer.warmup_epochs"),
        ({"training": {"early_stopping_patience": -1}}, "training.early_stopping_patience"),
    ],
)
def test_bad_values_name_the_field(values: dict, field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        TrialConfig.from_mapping(values)
    assert raised.value.field == field


def test_head_widths_are_searchable_lists_that_round_trip_through_optuna_and_the_grid(
    weights: dict[str, str], phantom: SearchData
) -> None:
    space = SearchSpace.model_validate({
        "fixed": {"model.backbone": "basic_cnn", "model.pretrained_path": weights["basic_cnn"]},
        "parameters": {
            "model.head_hidden_layers": {"choice": [[], [16, 8]]},
            "model.finetune": {"choice": ["full", "frozen", "lora"]},
        },
    })
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    drawn = []
    for _ in range(6):
        sample = DefineByRunSpace(space)(study.ask())
        drawn.append(space.resolve(sample).model.head_hidden_layers)
    assert set(map(tuple, drawn)) <= {(), (16, 8)} and all(isinstance(widths, list) for widths in drawn)
    assert sorted(point["model.head_hidden_layers"] for point in grid_points(space)) == [[]] * 3 + [[16, 8]] * 3
    # The pre-Ray check builds each distinct head and mode once and passes them.
    assert len(check_space(space, phantom)) >= 4


def test_the_pre_ray_check_refuses_partial_fine_tuning_without_pretrained_weights(phantom: SearchData) -> None:
    space = SearchSpace.model_validate({"parameters": {"model.finetune": {"choice": ["full", "frozen"]}}})
    with pytest.raises(ConfigError, match="model.finetune.*pretrained"):
        check_space(space, phantom)
