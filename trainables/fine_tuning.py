"""How much of a classifier trains (every weight, only a head on frozen features, or peft LoRA adapters) and its head
(timm's own classifier, or Linear+ReLU+Dropout layers on timm's pooled features): `create_classifier`."""

from __future__ import annotations

from collections.abc import Sequence

import peft
import torch
from torch import nn

from spaces.schema import ModelConfig
from trainables.backbones import BackboneError, check_forward, create_backbone


class ClassifierWithHead(nn.Module):
    """A timm backbone whose classifier is reset (it returns its pooled features) and a head of our own.

    With `frozen_backbone`, the backbone stays in eval mode even while the model trains: its BatchNorm running
    statistics are part of the frozen pretrained weights (a small medical dataset's batches would otherwise pull them
    away from what the frozen convolutions were trained with), and its own dropout and stochastic depth are off.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, *, frozen_backbone: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.frozen_backbone = frozen_backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def train(self, mode: bool = True) -> ClassifierWithHead:
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.eval()
        return self


def create_classifier(model: ModelConfig, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """The trial's classifier: logits [N, num_classes] from float images [N, in_channels, image_size, image_size].

    `full` without head layers is the timm model itself, unchanged. Otherwise the backbone's classifier is reset
    (timm's `reset_classifier(0)`: the model returns its pooled features) and a head is put on top: dropout, then
    Linear+ReLU+Dropout for each of `head_hidden_layers`, then the classifier (timm's own Linear, kept with any
    weights it loaded, when there are no hidden layers). The head always trains; `model.dropout` is its dropout
    (the backbone is built without, since timm's `drop_rate` is the dropout in front of its classifier).

    frozen: no backbone weight trains and the backbone runs in eval mode (see ClassifierWithHead).
    lora: peft LoRA adapters of rank `lora_rank` (scale lora_alpha / lora_rank) on the backbone's layers chosen by
    `lora_target_modules`; peft freezes every other backbone weight. The backbone stays in train mode: its
    BatchNorm statistics follow the adapted layers' outputs.
    """
    if model.finetune == "full" and not model.head_hidden_layers:
        return _backbone(model, num_classes, in_channels, image_size, dropout=model.dropout)
    backbone = _backbone(model, num_classes, in_channels, image_size, dropout=0.0)
    features = int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)
    classifier = backbone.get_classifier()
    own_classifier = (
        classifier if not model.head_hidden_layers and isinstance(classifier, nn.Linear) and classifier.in_features == features
        else None
    )
    backbone.reset_classifier(0)
    head = build_head(features, model.head_hidden_layers, num_classes, model.dropout, own_classifier)
    if model.finetune == "frozen":
        backbone.requires_grad_(False)
    elif model.finetune == "lora":
        backbone = add_lora(backbone, rank=model.lora_rank, alpha=model.lora_alpha)
    return ClassifierWithHead(backbone, head, frozen_backbone=model.finetune == "frozen")


def build_head(
    features: int, hidden_layers: Sequence[int], num_classes: int, dropout: float, classifier: nn.Linear | None = None
) -> nn.Sequential:
    """Dropout, then Linear+ReLU+Dropout per hidden width, then `classifier` (a new Linear when None)."""
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    width = features
    for hidden_width in hidden_layers:
        layers += [nn.Linear(width, hidden_width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = hidden_width
    layers.append(classifier if classifier is not None else nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def lora_target_modules(backbone: nn.Module) -> list[str]:
    """Where LoRA goes: the backbone's Linear layers when it has any (a ViT's attention and MLP projections, a
    ConvNeXt's pointwise MLPs: where transformers keep their weights), else its ungrouped Conv2d layers (ResNet,
    DenseNet, EfficientNet). Grouped and depthwise convolutions are left out: peft supports them only for ranks
    divisible by the group count, and they hold few weights."""
    modules = list(backbone.named_modules())
    linear = [name for name, module in modules if isinstance(module, nn.Linear)]
    if linear:
        return linear
    return [name for name, module in modules if isinstance(module, nn.Conv2d) and module.groups == 1]


def add_lora(backbone: nn.Module, *, rank: int, alpha: float | None) -> peft.PeftModel:
    """The backbone wrapped by peft with LoRA adapters; only the adapters train."""
    targets = lora_target_modules(backbone)
    if not targets:
        raise BackboneError(
            f"finetune 'lora' found no Linear or ungrouped Conv2d layer in backbone {type(backbone).__name__}; "
            f"use finetune 'full' or 'frozen'"
        )
    config = peft.LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, target_modules=targets, lora_dropout=0.0)
    try:
        return peft.get_peft_model(backbone, config)
    except (ValueError, TypeError, RuntimeError) as error:
        raise BackboneError(f"peft could not add LoRA adapters to backbone {type(backbone).__name__}: {error}") from error


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """What the optimizer updates: frozen weights get no optimizer state and no weight decay."""
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


def check_classifier(model: ModelConfig, *, num_classes: int, in_channels: int, image_size: int) -> None:
    """Builds the classifier and runs two blank images through it, so a name, weights, an image size it cannot take
    or a head / fine-tuning mode it cannot have fail before the sweep starts, by name, instead of in every trial."""
    classifier = create_classifier(model, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    check_forward(classifier, model.backbone, in_channels=in_channels, image_size=image_size)


def _backbone(model: ModelConfig, num_classes: int, in_channels: int, image_size: int, *, dropout: float) -> nn.Module:
    return create_backbone(
        model.backbone, num_classes=num_classes, in_channels=in_channels, image_size=image_size, dropout=dropout,
        pretrained=model.pretrained, pretrained_path=model.pretrained_path,
    )
