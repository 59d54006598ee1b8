"""Tests of the augmentation policies: every policy on grayscale and RGB, per-sample randomness, settings errors."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms import v2

from generators.augmentation import augment_batch, create_augmentation
from generators.augmentation.custom import CUSTOM_OPERATIONS, CustomSettings
from generators.augmentation.standard import RandAugmentSettings
from spaces import AUGMENTATION_POLICIES, AugmentationSettings, ConfigError, TrialConfig

BUILT_IN_POLICIES = ["autoaugment", "custom", "hflip", "medical", "none", "randaugment", "trivialaugment"]
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
    return {name: 1.0 for name in CustomSettings.model_fields if name != "policy"}


def policy(name: str, **settings: object) -> AugmentationSettings:
    """A policy's settings as a trial configuration validates them (the one place they are validated)."""
    return TrialConfig.from_mapping({"augmentation": {"policy": name, **settings}}).augmentation


def transform(name: str, **settings: object):
    return create_augmentation(policy(name, **settings))


def test_built_in_policies_are_registered() -> None:
    assert set(BUILT_IN_POLICIES) <= set(AUGMENTATION_POLICIES.names())


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
    augmented = augment_batch(transform(policy, **params), images)
    assert augmented.dtype == torch.uint8
    assert augmented.shape == images.shape


def test_none_returns_the_batch_unchanged() -> None:
    images = textured_images(4, 1, 28)
    assert transform("none") is None
    assert augment_batch(None, images) is images


def test_hflip_with_probability_one_equals_torch_flip() -> None:
    images = textured_images(8, 3, 28)
    augmented = augment_batch(transform("hflip", probability=1.0), images)
    assert torch.equal(augmented, torch.flip(images, dims=[-1]))


def test_augment_batch_draws_randomness_per_image() -> None:
    image = textured_images(1, 1, 28)
    images = image.expand(64, 1, 28, 28).clone()
    torch.manual_seed(0)
    augmented = augment_batch(transform("hflip", probability=0.5), images)
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
    made = transform(policy, **params)
    torch.manual_seed(123)
    first = augment_batch(made, images)
    torch.manual_seed(123)
    second = augment_batch(made, images)
    torch.manual_seed(456)
    other_seed = augment_batch(made, images)
    assert torch.equal(first, second)
    assert not torch.equal(first, other_seed)


def test_custom_without_parameters_is_identity() -> None:
    images = textured_images(8, 3, 28)
    assert torch.equal(augment_batch(transform("custom"), images), images)


def test_custom_with_all_probabilities_zero_is_identity_even_at_full_magnitude() -> None:
    params = {name: 1.0 for name in CustomSettings.model_fields if name.endswith("_magnitude")}
    params |= {name: 0.0 for name in CustomSettings.model_fields if name.endswith("_probability")}
    images = textured_images(8, 1, 28)
    assert torch.equal(augment_batch(transform("custom", **params), images), images)


@pytest.mark.parametrize("operation", OPERATIONS_WITH_MAGNITUDE + FLIPS)
@pytest.mark.parametrize("channels", [1, 3])
def test_each_custom_operation_changes_a_textured_image(operation: str, channels: int) -> None:
    params = {f"{operation}_probability": 1.0}
    if operation in OPERATIONS_WITH_MAGNITUDE:
        params[f"{operation}_magnitude"] = 1.0
    images = textured_images(16, channels, 28)
    torch.manual_seed(0)
    augmented = augment_batch(transform("custom", **params), images)
    changed = [not torch.equal(before, after) for before, after in zip(images, augmented)]
    # Random amounts near zero (a shift that rounds to 0 px, a blur sigma of 0.1) can leave an image
    # as it was, so ask for most images changed, not all.
    assert sum(changed) >= len(changed) // 2


@pytest.mark.parametrize("operation", OPERATIONS_WITH_MAGNITUDE)
def test_each_custom_operation_at_magnitude_zero_is_identity(operation: str) -> None:
    params = {f"{operation}_probability": 1.0, f"{operation}_magnitude": 0.0}
    images = textured_images(8, 1, 28)
    assert torch.equal(augment_batch(transform("custom", **params), images), images)


def test_custom_flips_with_probability_one_flip_every_image() -> None:
    images = textured_images(4, 3, 28)
    horizontal = augment_batch(transform("custom", horizontal_flip_probability=1.0), images)
    vertical = augment_batch(transform("custom", vertical_flip_probability=1.0), images)
    assert torch.equal(horizontal, torch.flip(images, dims=[-1]))
    assert torch.equal(vertical, torch.flip(images, dims=[-2]))


def test_custom_magnitude_scales_the_change() -> None:
    images = structured_images(64, 1, 32)

    def mean_change(magnitude: float) -> float:
        torch.manual_seed(0)
        rotation = transform("custom", rotation_probability=1.0, rotation_magnitude=magnitude)
        return (augment_batch(rotation, images).float() - images.float()).abs().mean().item()

    assert mean_change(0.1) < mean_change(1.0)


def test_randaugment_magnitude_thirty_changes_images_more_than_zero() -> None:
    images = structured_images(64, 1, 32)

    def mean_change(magnitude: int) -> float:
        torch.manual_seed(0)
        randaugment = transform("randaugment", num_ops=2, magnitude=magnitude)
        return (augment_batch(randaugment, images).float() - images.float()).abs().mean().item()

    assert mean_change(0) < mean_change(30)


def test_settings_are_introspectable_with_type_default_and_range() -> None:
    schema = RandAugmentSettings.model_json_schema()["properties"]
    assert {key: schema["num_ops"][key] for key in ("type", "default", "minimum", "maximum")} == {
        "type": "integer", "default": 2, "minimum": 1, "maximum": 5,
    }
    assert {key: schema["magnitude"][key] for key in ("default", "minimum", "maximum")} == {
        "default": 9,
        "minimum": 0,
        "maximum": 30,
    }
    assert policy("hflip").probability == 0.5
    assert set(AUGMENTATION_POLICIES.entry("autoaugment").settings.model_fields) == {"policy"}


def test_custom_declares_a_probability_per_operation_and_a_magnitude_per_non_flip() -> None:
    schema = CustomSettings.model_json_schema()["properties"]
    expected = {f"{operation}_probability" for operation in OPERATIONS_WITH_MAGNITUDE + FLIPS}
    expected |= {f"{operation}_magnitude" for operation in OPERATIONS_WITH_MAGNITUDE}
    assert set(schema) - {"policy"} == expected
    assert set(CUSTOM_OPERATIONS) == set(OPERATIONS_WITH_MAGNITUDE + FLIPS)
    for name in expected:
        assert (schema[name]["type"], schema[name]["minimum"], schema[name]["maximum"]) == ("number", 0.0, 1.0)
        assert schema[name]["default"] == (0.0 if name.endswith("_probability") else 0.5)


def test_settings_accept_integral_floats_for_ints_from_samplers() -> None:
    settings = policy("randaugment", magnitude=12.0)
    assert (settings.num_ops, settings.magnitude) == (2, 12) and isinstance(settings.magnitude, int)
    assert isinstance(policy("hflip", probability=1).probability, float)


def test_unknown_policy_names_the_field_and_the_registered_policies() -> None:
    with pytest.raises(
        ConfigError,
        match=r"augmentation.policy: 'randaugmnt' is not allowed; unknown augmentation policy; registered: "
        r"autoaugment, custom, hflip, medical, none, randaugment, trivialaugment; did you mean 'randaugment'",
    ):
        policy("randaugmnt")


def test_unknown_setting_names_the_field_and_the_allowed_settings() -> None:
    with pytest.raises(
        ConfigError, match=r"augmentation.num_op: 3 is not allowed; unknown setting; allowed: policy, num_ops, magnitude; "
        r"did you mean 'num_ops'",
    ):
        policy("randaugment", num_op=3)
    with pytest.raises(ConfigError, match=r"augmentation.magnitude: 9 is not allowed; unknown setting; allowed: policy$"):
        policy("autoaugment", magnitude=9)


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("randaugment", {"magnitude": 31}, r"augmentation.magnitude: 31 is not allowed; .*less than or equal to 30"),
        ("randaugment", {"num_ops": 0}, r"augmentation.num_ops: 0 is not allowed; .*greater than or equal to 1"),
        ("hflip", {"probability": 1.5}, r"augmentation.probability: 1.5 .*less than or equal to 1"),
        ("custom", {"rotation_magnitude": -0.1}, r"augmentation.rotation_magnitude: -0.1 .*greater than or equal to 0"),
        ("custom", {"shear_probability": math.nan}, r"augmentation.shear_probability: nan .*finite number"),
        ("randaugment", {"magnitude": 9.5}, r"augmentation.magnitude: 9.5 .*valid integer"),
        ("randaugment", {"magnitude": "high"}, r"augmentation.magnitude: 'high' .*valid integer"),
    ],
)
def test_invalid_setting_values_name_the_field_the_value_and_the_allowed_range(name: str, settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        policy(name, **settings)


def test_a_registered_policy_is_usable_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    class InvertSettings(AugmentationSettings):
        strength: int = 1

    # A copy of the registry, restored after the test, so the test policy does not leak into others.
    monkeypatch.setattr(AUGMENTATION_POLICIES, "_entries", dict(AUGMENTATION_POLICIES._entries))

    @AUGMENTATION_POLICIES.register("invert", settings=InvertSettings)
    def invert(settings: InvertSettings) -> v2.Transform:
        return v2.Lambda(lambda image: 255 - image if settings.strength else image)

    images = textured_images(2, 1, 28)
    assert "invert" in AUGMENTATION_POLICIES.names()
    assert torch.equal(augment_batch(transform("invert"), images), 255 - images)
    assert torch.equal(augment_batch(transform("invert", strength=0), images), images)


def test_registering_a_taken_name_fails() -> None:
    with pytest.raises(ValueError, match="augmentation policy 'hflip' is already registered"):
        AUGMENTATION_POLICIES.register("hflip", settings=AugmentationSettings)(lambda settings: None)
