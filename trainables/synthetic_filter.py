"""The label-fidelity filter of synthetic images (Kakkar's manual filtering, automated and leakage-safe): a small
classifier fit only on the real images a generator was fit on, and which drawn synthetic images it disagrees with.

The driver fits one filter classifier per repeat seed before trials start (search/synthetic/label_filters.py) and
hands its weights to trials with the SyntheticSource; a trial scores the images it drew (inference only) and keeps
those whose probability of their own label is at least `synthetic.filter_threshold`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from trainables.backbones import DEFAULT_MEAN, DEFAULT_STD, create_backbone
from trainables.training import class_weights, create_loss, epoch_batches, predict_logits, train_one_epoch

# The filter and the classification accuracy score train a fixed small recipe, so their cost is bounded and known:
# epochs x images forward and backward passes of Kwon's basic CNN (about a second per 1000 images per epoch at
# 32 px on one CPU core).


@dataclass(frozen=True)
class SmallClassifierRecipe:
    """A fixed, cheap training recipe: class-weighted cross-entropy (small classes are not ignored), Adam, no
    augmentation, `epochs` passes over the images in batches of `batch_size`."""

    backbone: str = "basic_cnn"
    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 1e-3


DEFAULT_RECIPE = SmallClassifierRecipe()


def small_classifier_normalization(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (DEFAULT_MEAN,) * channels, (DEFAULT_STD,) * channels


def fit_small_classifier(
    images: np.ndarray, labels: np.ndarray, *, num_classes: int, seed: int, recipe: SmallClassifierRecipe = DEFAULT_RECIPE
) -> nn.Module:
    """A classifier trained from scratch on uint8 images [N, C, H, W] with the recipe, on the CPU, deterministic for
    (images, labels, seed); returned in eval mode."""
    torch.manual_seed(seed)
    pixels = torch.from_numpy(np.array(images))
    targets = torch.from_numpy(np.array(labels, dtype=np.int64))
    model = create_backbone(recipe.backbone, num_classes=num_classes, in_channels=pixels.shape[1], image_size=pixels.shape[2])
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    loss_function = create_loss(label_smoothing=0.0, weights=class_weights(targets, num_classes))
    normalization = small_classifier_normalization(pixels.shape[1])
    generator = torch.Generator().manual_seed(seed)
    for _ in range(recipe.epochs):
        batches = epoch_batches(targets, batch_size=recipe.batch_size, imbalance="none", generator=generator)
        if batches:
            train_one_epoch(
                model, pixels, targets, batches=batches, optimizer=optimizer, loss_function=loss_function,
                normalization=normalization, device=torch.device("cpu"),
            )
    return model.eval()


def label_probabilities(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, normalization: tuple[tuple[float, ...], tuple[float, ...]]
) -> np.ndarray:
    """float64 [N]: the model's softmax probability of each image's own label."""
    if len(images) == 0:
        return np.zeros(0)
    logits = predict_logits(model, torch.from_numpy(np.array(images)), normalization=normalization,
                            device=torch.device("cpu"))
    probabilities = torch.softmax(logits, dim=1).double().numpy()
    return probabilities[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)]


@dataclass(frozen=True, eq=False)
class LabelFilter:
    """A fitted filter classifier as plain weights (pickled into every trial with the SyntheticSource): the
    identity of the real subset it was fit on, which is the generator's fit subset for that seed."""

    fit_subset: str
    fit_images: int
    num_classes: int
    channels: int
    image_size: int
    recipe: SmallClassifierRecipe
    state: dict[str, torch.Tensor] = field(repr=False)

    def model(self) -> nn.Module:
        model = create_backbone(
            self.recipe.backbone, num_classes=self.num_classes, in_channels=self.channels, image_size=self.image_size
        )
        model.load_state_dict(self.state)
        return model.eval()

    def label_probabilities(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return label_probabilities(self.model(), images, labels, small_classifier_normalization(self.channels))

    def kept(self, images: np.ndarray, class_index: int, threshold: float) -> np.ndarray:
        """bool [N]: which images of `class_index` get at least `threshold` probability of their label."""
        probabilities = self.label_probabilities(images, np.full(len(images), class_index))
        return probabilities >= threshold


def fit_label_filter(
    images: np.ndarray, labels: np.ndarray, *, fit_subset: str, num_classes: int, seed: int,
    recipe: SmallClassifierRecipe = DEFAULT_RECIPE,
) -> LabelFilter:
    """The filter for one seed, fit on `images` / `labels`: the generator's fit subset, never validation or test
    images and never more real images than the generator itself saw."""
    model = fit_small_classifier(images, labels, num_classes=num_classes, seed=seed, recipe=recipe)
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    return LabelFilter(fit_subset, len(labels), num_classes, images.shape[1], images.shape[2], recipe, state)
