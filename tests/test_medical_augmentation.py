"""Tests of the ``medical`` augmentation policy (TorchIO on 2-D images) and of ``oversample`` using its operations."""

from __future__ import annotations

import subprocess
import sys
from functools import cache

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from generators import OversampleSettings, create_generator
from generators.augmentation import augment_batch, create_augmentation
from generators.augmentation.custom import custom_transform
from generators.augmentation.medical import MEDICAL_OPERATIONS, MedicalSettings, MedicalTransform
from spaces import AUGMENTATION_POLICIES, ConfigError, SearchSpace, SyntheticConfig, TrialConfig
from trainables.datasets import make_phantom

OPERATIONS = list(MEDICAL_OPERATIONS)

# TorchIO warns when a setting does not suit a one-slice image (an elastic warp that may fold, an axis that
# does not exist); the policy is built so that it never has to.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning", "error::UserWarning")


@cache
def _phantom(size: int) -> torch.Tensor:
    images, _ = make_phantom(20, size, seed=0)
    return torch.from_numpy(images)


def phantom_images(count: int, channels: int, size: int) -> torch.Tensor:
    """Brain-like phantom slices, grey on black, repeated across `channels` as RGB copies of a grey scan are."""
    return _phantom(size)[:count].expand(count, channels, size, size).clone()


def policy(**settings: object) -> MedicalSettings:
    """Settings as a trial configuration validates them (the one place they are validated)."""
    validated = TrialConfig.from_mapping({"augmentation": {"policy": "medical", **settings}}).augmentation
    assert isinstance(validated, MedicalSettings)
    return validated


def transform(**settings: object):
    return create_augmentation(policy(**settings))


def strongest(operation: str) -> dict[str, float]:
    return {f"{operation}_probability": 1.0, f"{operation}_magnitude": 1.0}


def every_operation_at_full_strength() -> dict[str, float]:
    return {name: 1.0 for name in MedicalSettings.model_fields if name != "policy"}


def test_medical_is_registered_with_its_settings() -> None:
    assert "medical" in AUGMENTATION_POLICIES.names()
    assert AUGMENTATION_POLICIES.entry("medical").settings is MedicalSettings


def test_every_operation_has_a_probability_and_a_magnitude_in_zero_to_one() -> None:
    schema = MedicalSettings.model_json_schema()["properties"]
    expected = {f"{operation}_{part}" for operation in OPERATIONS for part in ("probability", "magnitude")}
    assert set(schema) - {"policy"} == expected
    for name in expected:
        assert (schema[name]["type"], schema[name]["minimum"], schema[name]["maximum"]) == ("number", 0.0, 1.0)
        assert schema[name]["default"] == (0.0 if name.endswith("_probability") else 0.5)
    assert all(operation.maximum > 0 and operation.strength_meaning for operation in MEDICAL_OPERATIONS.values())


def test_default_settings_change_nothing() -> None:
    images = phantom_images(4, 3, 28)
    made = transform()
    assert isinstance(made, v2.Identity)
    assert torch.equal(augment_batch(made, images), images)


def test_full_magnitude_with_every_probability_zero_changes_nothing() -> None:
    settings = {name: 1.0 for name in MedicalSettings.model_fields if name.endswith("_magnitude")}
    images = phantom_images(4, 1, 28)
    assert torch.equal(augment_batch(transform(**settings), images), images)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 64])
def test_each_operation_changes_a_phantom_and_keeps_dtype_and_shape(operation: str, channels: int, size: int) -> None:
    images = phantom_images(6, channels, size)
    torch.manual_seed(0)
    augmented = augment_batch(transform(**strongest(operation)), images)
    assert augmented.dtype == torch.uint8 and augmented.shape == images.shape
    changed = [not torch.equal(before, after) for before, after in zip(images, augmented)]
    # Amounts are drawn from [0, strength]: a draw near zero may leave one image as it was, not most.
    assert sum(changed) >= len(changed) - 1, operation


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 64])
def test_every_operation_at_once_keeps_dtype_and_shape(channels: int, size: int) -> None:
    images = phantom_images(4, channels, size)
    torch.manual_seed(0)
    augmented = augment_batch(transform(**every_operation_at_full_strength()), images)
    assert augmented.dtype == torch.uint8 and augmented.shape == images.shape
    assert not torch.equal(augmented, images)


def test_an_image_that_is_not_square_keeps_its_shape() -> None:
    image = torch.nn.functional.interpolate(phantom_images(1, 3, 28).float(), size=(28, 40)).to(torch.uint8)[0]
    torch.manual_seed(0)
    augmented = transform(**every_operation_at_full_strength())(image)
    assert augmented.dtype == torch.uint8 and augmented.shape == (3, 28, 40)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_each_operation_at_magnitude_zero_is_identity(operation: str) -> None:
    made = transform(**{f"{operation}_probability": 1.0, f"{operation}_magnitude": 0.0})
    images = phantom_images(4, 1, 28)
    assert torch.equal(augment_batch(made, images), images)


def test_an_image_that_no_operation_touches_comes_back_exactly() -> None:
    from torchio import Compose

    image = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16).repeat(3, 1, 1)
    assert torch.equal(MedicalTransform(Compose([]))(image), image)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_magnitude_scales_the_change(operation: str) -> None:
    images = phantom_images(8, 1, 28)

    def mean_change(magnitude: float) -> float:
        torch.manual_seed(0)
        made = transform(**{f"{operation}_probability": 1.0, f"{operation}_magnitude": magnitude})
        return (augment_batch(made, images).float() - images.float()).abs().mean().item()

    assert mean_change(0.2) < mean_change(1.0)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_augment_batch_gives_each_image_its_own_draw(operation: str) -> None:
    copies = phantom_images(1, 1, 28).expand(2, 1, 28, 28).clone()
    torch.manual_seed(0)
    first, second = augment_batch(transform(**strongest(operation)), copies)
    assert not torch.equal(first, second)


def test_the_same_torch_seed_gives_the_same_images_and_numpy_is_left_alone() -> None:
    images = phantom_images(6, 3, 28)
    made = transform(**{name: 0.7 for name in MedicalSettings.model_fields if name != "policy"})
    numpy_state = np.random.get_state()
    torch.manual_seed(123)
    first = augment_batch(made, images)
    torch.manual_seed(123)
    second = augment_batch(made, images)
    torch.manual_seed(456)
    other_seed = augment_batch(made, images)
    assert torch.equal(first, second)
    assert not torch.equal(first, other_seed)
    # Every draw comes from torch's RNG; numpy's global state, which torch.manual_seed does not reset, is untouched.
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"motion_probability": 1.5}, r"augmentation.motion_probability: 1.5 .*less than or equal to 1"),
        ({"bias_field_magnitude": -0.1}, r"augmentation.bias_field_magnitude: -0.1 .*greater than or equal to 0"),
        ({"spike_magnitude": float("nan")}, r"augmentation.spike_magnitude: nan .*finite number"),
        (
            {"elastic_probability": 0.5},
            r"augmentation.elastic_probability: 0.5 .*unknown setting.*elastic_deformation_probability",
        ),
    ],
)
def test_invalid_settings_name_the_field_the_value_and_what_is_allowed(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        policy(**settings)


def test_torchio_is_imported_only_when_a_medical_operation_is_built() -> None:
    script = (
        "import sys, generators, generators.augmentation as augmentation\n"
        "from spaces import TrialConfig\n"
        "settings = lambda **values: TrialConfig.from_mapping({'augmentation': {'policy': 'medical', **values}}).augmentation\n"
        "augmentation.create_augmentation(settings())\n"
        "assert 'torchio' not in sys.modules, 'imported without a medical operation'\n"
        "augmentation.create_augmentation(settings(noise_probability=0.5))\n"
        "assert 'torchio' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


# --- a search space ----------------------------------------------------------------------------------------------


def test_a_search_space_samples_medicals_settings() -> None:
    when_medical = {"augmentation.policy": "medical"}
    space = SearchSpace(
        parameters={
            "augmentation.policy": {"choice": ["custom", "medical"]},
            "augmentation.motion_probability": {"uniform": [0.0, 1.0], "when": when_medical},
            "augmentation.motion_magnitude": {"uniform": [0.1, 1.0], "when": when_medical, "mutable": True},
            "augmentation.bias_field_probability": {"uniform": [0.0, 0.8], "when": when_medical},
            "augmentation.rotation_probability": {"uniform": [0.0, 1.0], "when": {"augmentation.policy": "custom"}},
        }
    )
    trials = space.validate_samples()
    medical_trials = [trial.augmentation for trial in trials if trial.augmentation.policy == "medical"]
    assert medical_trials and all(isinstance(settings, MedicalSettings) for settings in medical_trials)
    assert {settings.motion_magnitude for settings in medical_trials} >= {0.1, 1.0}
    trial = space.resolve(
        {
            "augmentation.policy": "medical",
            "augmentation.motion_probability": 0.3,
            "augmentation.motion_magnitude": 0.6,
            "augmentation.bias_field_probability": 0.2,
            "augmentation.rotation_probability": 0.9,
        }
    )
    assert (trial.augmentation.motion_probability, trial.augmentation.motion_magnitude) == (0.3, 0.6)
    assert (
        trial.augmentation.bias_field_probability == 0.2 and "rotation_probability" not in type(trial.augmentation).model_fields
    )
    assert isinstance(create_augmentation(trial.augmentation), MedicalTransform)


# --- oversample ----------------------------------------------------------------------------------------------------

# The hashes these settings had before the medical operations existed: they name images in existing pools.
HASHES_BEFORE_MEDICAL = {
    "defaults": ({}, "939ea1969795"),
    "quick and full presets": (
        {"rotation_probability": 0.5, "rotation_magnitude": 0.5, "brightness_probability": 0.5, "brightness_magnitude": 0.5},
        "67349dde1178",
    ),
    "lan2024 preset": (
        {
            "rotation_probability": 0.5,
            "rotation_magnitude": 0.5,
            "horizontal_flip_probability": 0.5,
            "brightness_probability": 0.5,
            "contrast_probability": 0.5,
        },
        "b73435aeaf57",
    ),
    "generator tests": (
        {"rotation_probability": 0.5, "rotation_magnitude": 0.2, "gaussian_noise_probability": 1.0},
        "49d48916b153",
    ),
}


def oversample_settings(**values: object) -> OversampleSettings:
    settings = SyntheticConfig.model_validate({"generator": "oversample", "settings": values}).settings
    assert isinstance(settings, OversampleSettings)
    return settings


def _sources(count: int, size: int = 28) -> np.ndarray:
    return phantom_images(count, 3, size).numpy()


@pytest.mark.parametrize("name", HASHES_BEFORE_MEDICAL)
def test_oversample_settings_without_medical_operations_keep_their_hash(name: str) -> None:
    values, expected = HASHES_BEFORE_MEDICAL[name]
    assert oversample_settings(**values).settings_hash == expected
    # A medical magnitude without its probability changes no image, so it changes no hash either.
    assert oversample_settings(**values, motion_magnitude=0.9).settings_hash == expected
    with_medical = oversample_settings(**values, motion_probability=0.5)
    assert with_medical.settings_hash != expected
    assert with_medical.settings_hash != oversample_settings(**values, motion_probability=0.6).settings_hash
    assert with_medical.settings_hash != oversample_settings(**values, motion_probability=0.5, spike_magnitude=0.1).settings_hash


def test_oversample_without_medical_operations_makes_the_images_it_made_before() -> None:
    values, _ = HASHES_BEFORE_MEDICAL["generator tests"]
    settings = oversample_settings(**values)
    generator = create_generator(settings, num_classes=3, channels=3, image_size=28)
    sources, seeds = _sources(4), [3, 5, 7, 9]
    before = custom_transform(settings)
    expected = []
    for source, seed in zip(sources, seeds):
        torch.manual_seed(seed)
        expected.append(before(torch.tensor(source)).numpy())
    np.testing.assert_array_equal(generator.generate(0, seeds, sources), np.stack(expected))


def test_oversample_makes_images_with_medical_operations() -> None:
    settings = oversample_settings(bias_field_probability=1.0, motion_probability=0.5, noise_probability=1.0)
    generator = create_generator(settings, num_classes=3, channels=3, image_size=28)
    sources = _sources(3)
    sources.flags.writeable = False
    state = torch.random.get_rng_state()
    together = generator.generate(1, [10, 11, 12], sources)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert together.dtype == np.uint8 and together.shape == sources.shape
    assert all(not np.array_equal(made, source) for made, source in zip(together, sources))
    alone = np.concatenate([generator.generate(1, [seed], sources[[index]]) for index, seed in enumerate([10, 11, 12])])
    np.testing.assert_array_equal(together, alone)
    assert not np.array_equal(generator.generate(1, [99], sources[[0]])[0], together[0])


def test_oversample_combines_custom_and_medical_operations() -> None:
    both = oversample_settings(horizontal_flip_probability=1.0, gamma_probability=1.0)
    only_flip = oversample_settings(horizontal_flip_probability=1.0)
    sources = _sources(2)
    flipped = create_generator(only_flip, num_classes=3, channels=3, image_size=28).generate(0, [1, 2], sources)
    np.testing.assert_array_equal(flipped, sources[..., ::-1])
    combined = create_generator(both, num_classes=3, channels=3, image_size=28).generate(0, [1, 2], sources)
    assert not np.array_equal(combined, flipped)


def test_oversample_rejects_out_of_range_medical_settings_by_name() -> None:
    with pytest.raises(ConfigError, match=r"synthetic.settings.spike_magnitude: 2 .*less than or equal to 1"):
        TrialConfig.from_mapping({"synthetic": {"generator": "oversample", "settings": {"spike_magnitude": 2}}})


def test_a_search_space_samples_oversamples_medical_settings() -> None:
    space = SearchSpace(
        parameters={
            "synthetic.proportion": {"choice": [0.5]},
            "synthetic.generator": {"choice": ["oversample", "ddpm"]},
            "synthetic.settings.bias_field_probability": {"uniform": [0.0, 1.0], "when": {"synthetic.generator": "oversample"}},
            "synthetic.settings.rotation_probability": {"choice": [0.5], "when": {"synthetic.generator": "oversample"}},
        }
    )
    trials = [trial for trial in space.validate_samples() if trial.synthetic.generator == "oversample"]
    assert {trial.synthetic.settings.bias_field_probability for trial in trials} >= {0.0, 1.0}
    assert all(trial.synthetic.settings.rotation_probability == 0.5 for trial in trials)
