"""Tests of the augmentation policies: every policy on grayscale and RGB, per-sample randomness, errors."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.augmentation import (
    AugmentationError,
    ImageTransform,
    ParameterSpec,
    augment_batch,
    augmentation_parameters,
    create_augmentation,
    list_augmentation_policies,
    register_augmentation,
    registry,
    resolve_augmentation_parameters,
)
from trainables.augmentation.custom import CUSTOM_OPERATIONS
from trainables.errors import TrainableInputError

BUILT_IN_POLICIES = ["autoaugment", "custom", "hflip", "none", "randaugment", "trivialaugment"]
OPERATIONS_WITH_MAGNITUDE = [
    "rotation", "shear", "translation", "brightness", "contrast", "gaussian_blur", "gaussian_noise"
]
FLIPS = ["horizontal_flip", "vertical_flip"]


def textured_images(batch_size: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random texture: every pixel differs from its neighbours, so any geometric or intensity change shows."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch_size, channels, size, size), dtype=torch.uint8, generator=generator)


def structured_images(batch_size: int, channels: int, size: int) -> torch.Tensor:
    """A mid-contrast gradient with a bright off-centre square, like an organ on a scan."""
    ramp = torch.linspace(60, 160, size)
    image = ramp[None, :] + ramp[:, None] * 0.3
    image[size // 5 : size // 2, size // 4 : size // 2 + 3] = 200
    image = image.round().to(torch.uint8)
    return image.expand(batch_size, channels, size, size).clone()


def strongest_custom_parameters() -> dict[str, float]:
    return {name: 1.0 for name in augmentation_parameters("custom")}


def test_built_in_policies_are_registered() -> None:
    assert set(BUILT_IN_POLICIES) <= set(list_augmentation_policies())


@pytest.mark.parametrize(
    ("policy", "params"),
    [
        ("none", {}),
        ("hflip", {}),
        ("autoaugment", {}),
        ("randaugment", {"num_ops": 5, "magnitude": 30}),
        ("trivialaugment", {}),
        ("custom", strongest_custom_parameters()),
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 64])
def test_every_policy_keeps_dtype_and_shape(
    policy: str, params: dict[str, float], channels: int, size: int
) -> None:
    torch.manual_seed(0)
    images = textured_images(32, channels, size)
    transform = create_augmentation(policy, **params)
    augmented = augment_batch(transform, images)
    assert augmented.dtype == torch.uint8
    assert augmented.shape == images.shape


def test_none_returns_the_batch_unchanged() -> None:
    images = textured_images(4, 1, 28)
    assert create_augmentation("none") is None
    assert augment_batch(None, images) is images


def test_hflip_with_probability_one_equals_torch_flip() -> None:
    images = textured_images(8, 3, 28)
    augmented = augment_batch(create_augmentation("hflip", probability=1.0), images)
    assert torch.equal(augmented, torch.flip(images, dims=[-1]))


def test_augment_batch_draws_randomness_per_image() -> None:
    image = textured_images(1, 1, 28)
    images = image.expand(64, 1, 28, 28).clone()
    torch.manual_seed(0)
    augmented = augment_batch(create_augmentation("hflip", probability=0.5), images)
    flipped = [torch.equal(one, torch.flip(image[0], dims=[-1])) for one in augmented]
    unchanged = [torch.equal(one, image[0]) for one in augmented]
    assert all(was_flipped or was_unchanged for was_flipped, was_unchanged in zip(flipped, unchanged))
    assert 0 < sum(flipped) < 64


@pytest.mark.parametrize(
    ("policy", "params"),
    [
        ("hflip", {}),
        ("autoaugment", {}),
        ("custom", {"rotation_probability": 0.5, "gaussian_noise_probability": 0.5}),
    ],
)
def test_augment_batch_is_reproducible_under_the_same_torch_seed(
    policy: str, params: dict[str, float]
) -> None:
    images = textured_images(16, 1, 28)
    transform = create_augmentation(policy, **params)
    torch.manual_seed(123)
    first = augment_batch(transform, images)
    torch.manual_seed(123)
    second = augment_batch(transform, images)
    torch.manual_seed(456)
    other_seed = augment_batch(transform, images)
    assert torch.equal(first, second)
    assert not torch.equal(first, other_seed)


def test_custom_without_parameters_is_identity() -> None:
    images = textured_images(8, 3, 28)
    assert torch.equal(augment_batch(create_augmentation("custom"), images), images)


def test_custom_with_all_probabilities_zero_is_identity_even_at_full_magnitude() -> None:
    params = {name: 1.0 for name in augmentation_parameters("custom") if name.endswith("_magnitude")}
    params |= {name: 0.0 for name in augmentation_parameters("custom") if name.endswith("_probability")}
    images = textured_images(8, 1, 28)
    assert torch.equal(augment_batch(create_augmentation("custom", **params), images), images)


@pytest.mark.parametrize("operation", OPERATIONS_WITH_MAGNITUDE + FLIPS)
@pytest.mark.parametrize("channels", [1, 3])
def test_each_custom_operation_changes_a_textured_image(operation: str, channels: int) -> None:
    params = {f"{operation}_probability": 1.0}
    if operation in OPERATIONS_WITH_MAGNITUDE:
        params[f"{operation}_magnitude"] = 1.0
    images = textured_images(16, channels, 28)
    torch.manual_seed(0)
    augmented = augment_batch(create_augmentation("custom", **params), images)
    changed = [not torch.equal(before, after) for before, after in zip(images, augmented)]
    # Random amounts near zero (a shift that rounds to 0 px, a blur sigma of 0.1) can leave an image
    # as it was, so ask for most images changed, not all.
    assert sum(changed) >= len(changed) // 2


@pytest.mark.parametrize("operation", OPERATIONS_WITH_MAGNITUDE)
def test_each_custom_operation_at_magnitude_zero_is_identity(operation: str) -> None:
    params = {f"{operation}_probability": 1.0, f"{operation}_magnitude": 0.0}
    transform = create_augmentation("custom", **params)
    images = textured_images(8, 1, 28)
    assert torch.equal(augment_batch(transform, images), images)


def test_custom_flips_with_probability_one_flip_every_image() -> None:
    images = textured_images(4, 3, 28)
    horizontal = augment_batch(create_augmentation("custom", horizontal_flip_probability=1.0), images)
    vertical = augment_batch(create_augmentation("custom", vertical_flip_probability=1.0), images)
    assert torch.equal(horizontal, torch.flip(images, dims=[-1]))
    assert torch.equal(vertical, torch.flip(images, dims=[-2]))


def test_custom_magnitude_scales_the_change() -> None:
    images = structured_images(64, 1, 32)

    def mean_change(magnitude: float) -> float:
        torch.manual_seed(0)
        transform = create_augmentation("custom", rotation_probability=1.0, rotation_magnitude=magnitude)
        return (augment_batch(transform, images).float() - images.float()).abs().mean().item()

    assert mean_change(0.1) < mean_change(1.0)


def test_randaugment_magnitude_thirty_changes_images_more_than_zero() -> None:
    images = structured_images(64, 1, 32)

    def mean_change(magnitude: int) -> float:
        torch.manual_seed(0)
        transform = create_augmentation("randaugment", num_ops=2, magnitude=magnitude)
        return (augment_batch(transform, images).float() - images.float()).abs().mean().item()

    assert mean_change(0) < mean_change(30)


def test_parameters_are_introspectable_with_kind_default_and_range() -> None:
    randaugment = augmentation_parameters("randaugment")
    num_ops = randaugment["num_ops"]
    assert (num_ops.kind, num_ops.default, num_ops.low, num_ops.high) == ("int", 2, 1, 5)
    assert (randaugment["magnitude"].kind, randaugment["magnitude"].default) == ("int", 9)
    assert (randaugment["magnitude"].low, randaugment["magnitude"].high) == (0, 30)
    assert augmentation_parameters("hflip")["probability"].default == 0.5
    assert augmentation_parameters("autoaugment") == {}


def test_custom_declares_a_probability_per_operation_and_a_magnitude_per_non_flip() -> None:
    parameters = augmentation_parameters("custom")
    expected = {f"{operation}_probability" for operation in OPERATIONS_WITH_MAGNITUDE + FLIPS}
    expected |= {f"{operation}_magnitude" for operation in OPERATIONS_WITH_MAGNITUDE}
    assert set(parameters) == expected
    assert set(CUSTOM_OPERATIONS) == set(OPERATIONS_WITH_MAGNITUDE + FLIPS)
    for spec in parameters.values():
        assert (spec.kind, spec.low, spec.high) == ("float", 0.0, 1.0)
        assert spec.default == (0.0 if spec.name.endswith("_probability") else 0.5)


def test_resolve_fills_defaults_and_accepts_integral_floats_for_ints() -> None:
    resolved = resolve_augmentation_parameters("randaugment", magnitude=12.0)
    assert resolved == {"num_ops": 2, "magnitude": 12}
    assert isinstance(resolved["magnitude"], int)
    assert isinstance(resolve_augmentation_parameters("hflip", probability=1)["probability"], float)


def test_unknown_policy_error_lists_the_registered_policies() -> None:
    with pytest.raises(
        AugmentationError,
        match=r"unknown augmentation policy 'randaugmnt'; registered policies: "
        r"autoaugment, custom, hflip, none, randaugment, trivialaugment; did you mean 'randaugment'",
    ):
        create_augmentation("randaugmnt")
    with pytest.raises(AugmentationError, match="unknown augmentation policy 'mixup'"):
        augmentation_parameters("mixup")


def test_augmentation_error_is_a_trainable_input_error() -> None:
    with pytest.raises(TrainableInputError):
        create_augmentation("mixup")


def test_unknown_parameter_error_lists_the_allowed_parameters() -> None:
    with pytest.raises(
        AugmentationError,
        match=r"policy 'randaugment' has no parameter 'num_op' \(given 3\); "
        r"allowed parameters: num_ops \(int in \[1, 5\]\), magnitude \(int in \[0, 30\]\); did you mean 'num_ops'",
    ):
        create_augmentation("randaugment", num_op=3)
    with pytest.raises(AugmentationError, match="policy 'autoaugment' has no parameter 'magnitude'.*no parameters"):
        create_augmentation("autoaugment", magnitude=9)


@pytest.mark.parametrize(
    ("policy", "params", "message"),
    [
        (
            "randaugment", {"magnitude": 31},
            r"'randaugment' parameter 'magnitude' = 31 is out of range; allowed: int in \[0, 30\]",
        ),
        (
            "randaugment", {"num_ops": 0},
            r"parameter 'num_ops' = 0 is out of range; allowed: int in \[1, 5\]",
        ),
        (
            "hflip", {"probability": 1.5},
            r"'hflip' parameter 'probability' = 1.5 is out of range; allowed: float in \[0.0, 1.0\]",
        ),
        (
            "custom", {"rotation_magnitude": -0.1},
            r"'rotation_magnitude' = -0.1 is out of range; allowed: float in \[0.0, 1.0\]",
        ),
        (
            "custom", {"shear_probability": math.nan},
            r"parameter 'shear_probability' = nan is out of range",
        ),
        (
            "randaugment", {"magnitude": 9.5},
            r"parameter 'magnitude' = 9.5 is not an integer; allowed: int in \[0, 30\]",
        ),
        (
            "randaugment", {"magnitude": "high"},
            r"'magnitude' = 'high' \(str\) is not a number; allowed: int in \[0, 30\]",
        ),
        (
            "hflip", {"probability": True},
            r"parameter 'probability' = True \(bool\) is not a number",
        ),
    ],
)
def test_invalid_parameter_values_name_the_value_and_the_allowed_range(
    policy: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(AugmentationError, match=message):
        create_augmentation(policy, **params)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.zeros(1, 28, 28, dtype=torch.uint8), r"uint8 \[B, C, H, W\]; got torch.uint8 with shape \(1, 28, 28\)"),
        (torch.zeros(2, 1, 28, 28), r"uint8 \[B, C, H, W\]; got torch.float32"),
    ],
)
def test_augment_batch_rejects_images_that_are_not_uint8_batches(images: torch.Tensor, message: str) -> None:
    with pytest.raises(AugmentationError, match=message):
        augment_batch(create_augmentation("hflip"), images)


def test_augment_batch_rejects_a_transform_that_changes_the_shape() -> None:
    with pytest.raises(AugmentationError, match="must keep each image's shape and dtype"):
        augment_batch(lambda image: image[:, :10, :10], textured_images(2, 1, 28))


def test_a_registered_policy_is_usable_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # A copy of the registry, restored after the test, so the test policy does not leak into others.
    monkeypatch.setattr(registry, "_POLICIES", dict(registry._POLICIES))

    @register_augmentation("invert", parameters=[ParameterSpec("strength", "int", 1, 0, 1, "1 inverts")])
    def invert(strength: int) -> ImageTransform:
        return lambda image: 255 - image if strength else image

    images = textured_images(2, 1, 28)
    assert "invert" in list_augmentation_policies()
    assert torch.equal(augment_batch(create_augmentation("invert"), images), 255 - images)
    assert torch.equal(augment_batch(create_augmentation("invert", strength=0), images), images)
    with pytest.raises(AugmentationError, match=r"'strength' = 2 is out of range; allowed: int in \[0, 1\]"):
        create_augmentation("invert", strength=2)


def test_registering_a_taken_name_fails() -> None:
    with pytest.raises(ValueError, match="augmentation policy 'hflip' is already registered"):
        register_augmentation("hflip")


def test_a_parameter_default_outside_its_range_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"parameter 'strength': default 2 lies outside \[0, 1\]"):
        ParameterSpec("strength", "int", 2, 0, 1, "")
