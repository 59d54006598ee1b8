"""Generators: the registry and settings validation, the tiny-size behaviour of ddpm, and oversample."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from generators import (
    DDPMGenerator,
    Generator,
    GeneratorError,
    create_generator,
    fit_settings_hash,
    generator_class,
    generator_setting_specs,
    list_generators,
    resolve_generator_settings,
    settings_hash,
)

TINY_SIZE = 16
TINY_DDPM_SETTINGS = {
    "block_out_channels": [8, 16],
    "training_steps": 20,
    "batch_size": 8,
    "num_train_timesteps": 50,
    "sampling_steps": 3,
    "sampling_batch_size": 4,
    # Strong guidance makes the class conditioning visible after only 20 steps.
    "guidance_scale": 5.0,
}


def _two_class_images(count_per_class: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 dark, class 1 bright, so that there is something to condition on."""
    random = np.random.default_rng(0)
    dark = random.integers(0, 60, size=(count_per_class, 1, TINY_SIZE, TINY_SIZE))
    bright = random.integers(190, 256, size=(count_per_class, 1, TINY_SIZE, TINY_SIZE))
    images = np.concatenate([dark, bright]).astype(np.uint8)
    labels = np.repeat(np.arange(2, dtype=np.int64), count_per_class)
    return images, labels


def _tiny_ddpm(**overrides: object) -> DDPMGenerator:
    generator = create_generator(
        "ddpm", settings=TINY_DDPM_SETTINGS | overrides, num_classes=2, channels=1, image_size=TINY_SIZE
    )
    assert isinstance(generator, DDPMGenerator)
    return generator


@pytest.fixture(scope="module")
def fitted_ddpm() -> DDPMGenerator:
    generator = _tiny_ddpm()
    images, labels = _two_class_images()
    steps_seen: list[tuple[int, int]] = []
    generator.fit(images, labels, seed=0, progress=lambda step, total: steps_seen.append((step, total)))
    assert steps_seen[-1] == (20, 20)
    return generator


# --- registry and settings -------------------------------------------------------------------------------


def test_registry_lists_the_built_in_generators() -> None:
    assert {"ddpm", "oversample"} <= set(list_generators())
    assert generator_class("ddpm").needs_fit and not generator_class("ddpm").image_to_image
    assert generator_class("oversample").image_to_image and not generator_class("oversample").needs_fit


def test_unknown_generator_names_the_registered_ones() -> None:
    with pytest.raises(GeneratorError, match=r"unknown generator 'dpm'.*ddpm, oversample.*did you mean 'ddpm'"):
        create_generator("dpm", settings=None, num_classes=2, channels=1, image_size=16)


def test_settings_resolve_to_defaults_and_coerce_integral_floats() -> None:
    specs = generator_setting_specs("ddpm")
    assert "image_size" not in specs
    resolved = resolve_generator_settings("ddpm", {"layers_per_block": 2.0, "guidance_scale": 3})
    assert resolved["layers_per_block"] == 2 and isinstance(resolved["layers_per_block"], int)
    assert resolved["guidance_scale"] == 3.0 and isinstance(resolved["guidance_scale"], float)
    assert resolved["sampling_steps"] == specs["sampling_steps"].default
    assert resolved["block_out_channels"] == list(specs["block_out_channels"].default)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"layer_per_block": 2}, r"no setting 'layer_per_block'.*did you mean 'layers_per_block'"),
        ({"layers_per_block": 2.5}, r"'layers_per_block' = 2.5 is not an integer; allowed: int in \[1, 4\]"),
        ({"layers_per_block": 9}, r"'layers_per_block' = 9 is not allowed; allowed: int in \[1, 4\]"),
        ({"guidance_scale": "high"}, r"'guidance_scale' = 'high' \(str\) is not a number; allowed: float in \[0, 20\]"),
        ({"class_dropout": math.nan}, r"'class_dropout' = nan is not finite"),
        ({"block_out_channels": [12, 24]}, r"'block_out_channels' = \[12, 24\] is not allowed;.*multiple of 8"),
        ({"block_out_channels": 32}, r"'block_out_channels' = 32 is not a non-empty list"),
        ({"sampling_steps": 100, "num_train_timesteps": 50}, r"'sampling_steps' = 100 .* num_train_timesteps = 50"),
        ({"beta_schedule": "cosine"}, r"'beta_schedule' = 'cosine' is not allowed; allowed: one of 'linear', .*'squaredcos_cap_v2'"),
        ({"prediction_type": "sample"}, r"'prediction_type' = 'sample' is not allowed; allowed: one of 'epsilon', 'v_prediction'"),
    ],
)
def test_bad_ddpm_settings_name_the_setting_value_and_what_is_allowed(settings: dict, message: str) -> None:
    with pytest.raises(GeneratorError, match=message) as raised:
        resolve_generator_settings("ddpm", settings)
    assert "generator 'ddpm'" in str(raised.value)


def test_settings_hash_ignores_key_order_and_operational_settings() -> None:
    forward = {"guidance_scale": 3, "layers_per_block": 2}
    backward = {"layers_per_block": 2.0, "guidance_scale": 3.0}
    assert settings_hash("ddpm", forward) == settings_hash("ddpm", backward)
    assert len(settings_hash("ddpm", forward)) == 12
    assert settings_hash("ddpm", forward) != settings_hash("ddpm", forward | {"guidance_scale": 4})
    assert settings_hash("ddpm", forward) == settings_hash("ddpm", forward | {"sampling_batch_size": 7})
    # Explicit defaults name the same images as omitted ones.
    assert settings_hash("ddpm", None) == settings_hash("ddpm", {"sampling_steps": 25})


def test_fit_settings_hash_is_shared_across_sampling_settings() -> None:
    assert fit_settings_hash("ddpm", {"guidance_scale": 1.0}) == fit_settings_hash("ddpm", {"sampling_steps": 5})
    assert fit_settings_hash("ddpm", None) != fit_settings_hash("ddpm", {"training_steps": 7})


def test_settings_hash_is_the_sha256_of_canonical_json() -> None:
    # Fixed text, not Python's per-process hash(): a changed hash would orphan every image a pool already stored.
    canonical = b'{"generator":"oversample","settings":{"rotation_magnitude":0.25,"rotation_probability":0.5}}'
    settings = {"rotation_probability": 0.5, "rotation_magnitude": 0.25}
    assert settings_hash("oversample", settings) == hashlib.sha256(canonical).hexdigest()[:12]


# --- ddpm ---------------------------------------------------------------------------------------------------


def test_ddpm_fit_gives_finite_losses(fitted_ddpm: DDPMGenerator) -> None:
    assert len(fitted_ddpm.training_losses) == 20
    assert all(math.isfinite(loss) for loss in fitted_ddpm.training_losses)


def test_ddpm_generates_uint8_images_of_the_data_shape(fitted_ddpm: DDPMGenerator) -> None:
    images = fitted_ddpm.generate(0, [1, 2, 3, 4, 5])
    assert images.dtype == np.uint8 and images.shape == (5, 1, TINY_SIZE, TINY_SIZE)
    assert fitted_ddpm.generate(0, []).shape == (0, 1, TINY_SIZE, TINY_SIZE)


def test_ddpm_image_depends_only_on_its_seed(fitted_ddpm: DDPMGenerator) -> None:
    together = fitted_ddpm.generate(1, [1, 2, 3])
    alone = np.concatenate([fitted_ddpm.generate(1, [seed]) for seed in (1, 2, 3)])
    np.testing.assert_array_equal(together, alone)
    # More images than one UNet call holds (sampling_batch_size 4), and in another order.
    mixed = fitted_ddpm.generate(1, [9, 3, 8, 7, 6, 1])
    np.testing.assert_array_equal(mixed[[5, 1]], together[[0, 2]])
    assert not np.array_equal(together[0], together[1])


def test_ddpm_class_conditioning_changes_the_images(fitted_ddpm: DDPMGenerator) -> None:
    seeds = list(range(4))
    dark, bright = fitted_ddpm.generate(0, seeds), fitted_ddpm.generate(1, seeds)
    assert not np.array_equal(dark, bright)
    # Trained on dark class 0 and bright class 1, guided samples should lean the same way.
    assert dark.astype(float).mean() < bright.astype(float).mean()


@pytest.mark.parametrize(
    ("beta_schedule", "prediction_type"), [("linear", "epsilon"), ("scaled_linear", "v_prediction")]
)
def test_ddpm_other_schedules_and_targets_fit_and_keep_class_conditioning(
    fitted_ddpm: DDPMGenerator, beta_schedule: str, prediction_type: str, tmp_path: Path
) -> None:
    images, labels = _two_class_images()
    generator = _tiny_ddpm(beta_schedule=beta_schedule, prediction_type=prediction_type)
    generator.fit(images, labels, seed=0)
    dark, bright = generator.generate(0, [1, 2, 3, 4]), generator.generate(1, [1, 2, 3, 4])
    assert dark.astype(float).mean() < bright.astype(float).mean()
    # The schedule and target are part of the fit: a model of the defaults is not loaded as this one.
    assert fit_settings_hash("ddpm", generator.settings) != fit_settings_hash("ddpm", fitted_ddpm.settings)
    generator.save(tmp_path / "model")
    restored = _tiny_ddpm(beta_schedule=beta_schedule, prediction_type=prediction_type)
    restored.load(tmp_path / "model")
    np.testing.assert_array_equal(restored.generate(1, [1, 2]), bright[:2])
    with pytest.raises(GeneratorError, match="fit differently"):
        _tiny_ddpm().load(tmp_path / "model")


def test_ddpm_fit_is_reproducible_for_a_seed(fitted_ddpm: DDPMGenerator) -> None:
    images, labels = _two_class_images()
    refit = _tiny_ddpm()
    refit.fit(images, labels, seed=0)
    assert refit.training_losses == fitted_ddpm.training_losses
    np.testing.assert_array_equal(refit.generate(0, [5, 6]), fitted_ddpm.generate(0, [5, 6]))


def test_ddpm_samples_from_the_moving_average_of_the_weights(fitted_ddpm: DDPMGenerator) -> None:
    images, labels = _two_class_images()
    final_weights = _tiny_ddpm(ema_decay=0.0)
    final_weights.fit(images, labels, seed=0)
    # Same seed, same batches, same losses: only the weights sampled from differ.
    assert final_weights.training_losses == fitted_ddpm.training_losses
    assert not np.array_equal(final_weights.generate(0, [5, 6]), fitted_ddpm.generate(0, [5, 6]))


def test_ddpm_fit_leaves_the_global_rng_alone() -> None:
    images, labels = _two_class_images(2)
    state = torch.random.get_rng_state()
    _tiny_ddpm(training_steps=1).fit(images, labels, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_ddpm_save_and_load_reproduce_the_images(fitted_ddpm: DDPMGenerator, tmp_path: Path) -> None:
    fitted_ddpm.save(tmp_path / "model")
    # Sampling settings may differ from the fit's; only the fit settings must match.
    restored = _tiny_ddpm(sampling_batch_size=2)
    restored.load(tmp_path / "model")
    np.testing.assert_array_equal(restored.generate(1, [4, 5, 6]), fitted_ddpm.generate(1, [4, 5, 6]))


def test_ddpm_load_refuses_a_model_fit_with_other_settings(fitted_ddpm: DDPMGenerator, tmp_path: Path) -> None:
    fitted_ddpm.save(tmp_path / "model")
    with pytest.raises(GeneratorError, match=r"fit differently.*fit_settings_hash"):
        _tiny_ddpm(training_steps=21).load(tmp_path / "model")


def test_ddpm_load_names_a_missing_or_corrupt_directory(fitted_ddpm: DDPMGenerator, tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match=r"nowhere.*generator.json is missing"):
        _tiny_ddpm().load(tmp_path / "nowhere")
    fitted_ddpm.save(tmp_path / "model")
    (tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights")
    with pytest.raises(GeneratorError, match=r"cannot load the ddpm model in .*model"):
        _tiny_ddpm().load(tmp_path / "model")


def test_ddpm_refuses_sources_and_generating_before_fit(fitted_ddpm: DDPMGenerator) -> None:
    sources = np.zeros((1, 1, TINY_SIZE, TINY_SIZE), np.uint8)
    with pytest.raises(GeneratorError, match="takes no source images"):
        fitted_ddpm.generate(0, [1], sources)
    with pytest.raises(GeneratorError, match="not fitted"):
        _tiny_ddpm().generate(0, [1])
    with pytest.raises(GeneratorError, match=r"class_index = 2 .* \[0, 1\]"):
        fitted_ddpm.generate(2, [1])


def test_ddpm_rejects_an_image_size_its_levels_cannot_halve() -> None:
    with pytest.raises(GeneratorError, match=r"'block_out_channels' = \[8, 16, 32\].*image_size 18"):
        create_generator("ddpm", settings={"block_out_channels": [8, 16, 32]}, num_classes=2, channels=1, image_size=18)


def test_ddpm_refuses_a_class_the_fit_never_saw() -> None:
    images, labels = _two_class_images(2)
    generator = _tiny_ddpm(training_steps=1)
    generator.fit(images[labels == 0], labels[labels == 0], seed=0)
    assert generator.generate(0, [1]).shape == (1, 1, TINY_SIZE, TINY_SIZE)
    with pytest.raises(GeneratorError, match=r"cannot generate class 1: the fit had no training images of it"):
        generator.generate(1, [1])


def test_ddpm_fit_rejects_labels_outside_the_classes() -> None:
    images, labels = _two_class_images(2)
    with pytest.raises(GeneratorError, match=r"labels range over \[0, 2\]; allowed: \[0, 1\]"):
        _tiny_ddpm().fit(images, labels * 2, seed=0)


# --- oversample -----------------------------------------------------------------------------------------------


def _noisy_augment(image: torch.Tensor) -> torch.Tensor:
    """A random augmentation drawing from torch's global RNG, as the trainables' augmentations do."""
    noise = torch.randint(-40, 41, image.shape)
    return (image.to(torch.int16) + noise).clamp(0, 255).to(torch.uint8)


def _sources(count: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(count, channels, 8, 8), dtype=np.uint8)


def _oversample(augment: object = _noisy_augment) -> Generator:
    return create_generator(
        "oversample",
        settings={"rotation_probability": 0.5, "rotation_magnitude": 0.2},
        num_classes=3,
        channels=3,
        image_size=8,
        augment=augment,
    )


def test_oversample_needs_an_augment_callable() -> None:
    with pytest.raises(GeneratorError, match="oversample' needs an augment callable"):
        create_generator("oversample", settings=None, num_classes=3, channels=3, image_size=8)
    with pytest.raises(GeneratorError, match="takes no dependency 'augment'"):
        create_generator("ddpm", settings=None, num_classes=3, channels=1, image_size=8, augment=_noisy_augment)


def test_oversample_accepts_only_augmentation_parameters_as_settings() -> None:
    assert resolve_generator_settings("oversample", None) == {}
    assert settings_hash("oversample", {"rotation_probability": 0.5}) != settings_hash(
        "oversample", {"rotation_probability": 0.6}
    )
    with pytest.raises(GeneratorError, match=r"no setting 'rotation'.*'<operation>_probability'"):
        resolve_generator_settings("oversample", {"rotation": 0.5})
    with pytest.raises(GeneratorError, match=r"'shear_magnitude' = 2 is not allowed; allowed: float in \[0, 1\]"):
        resolve_generator_settings("oversample", {"shear_magnitude": 2})


def test_oversample_needs_matching_sources() -> None:
    generator = _oversample()
    with pytest.raises(GeneratorError, match="makes each image from a source image"):
        generator.generate(0, [1, 2])
    with pytest.raises(GeneratorError, match=r"sources must be a uint8 array shaped \[2, 3, 8, 8\]"):
        generator.generate(0, [1, 2], _sources(3))


def test_oversample_image_depends_only_on_its_source_and_seed() -> None:
    generator = _oversample()
    sources = _sources(3)
    together = generator.generate(0, [10, 11, 12], sources)
    alone = np.concatenate([generator.generate(0, [seed], sources[[index]]) for index, seed in enumerate([10, 11, 12])])
    np.testing.assert_array_equal(together, alone)
    reordered = generator.generate(0, [12, 10], sources[[2, 0]])
    np.testing.assert_array_equal(reordered, together[[2, 0]])
    assert not np.array_equal(together, sources)
    # Another seed for the same source gives another augmentation.
    assert not np.array_equal(generator.generate(0, [99], sources[[0]])[0], together[0])


def test_oversample_leaves_the_global_rng_and_the_sources_alone() -> None:
    sources = _sources(2)
    sources.flags.writeable = False
    state = torch.random.get_rng_state()
    _oversample().generate(1, [1, 2], sources)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_oversample_with_identity_augment_returns_the_sources() -> None:
    sources = _sources(4)
    np.testing.assert_array_equal(_oversample(lambda image: image).generate(2, [1, 2, 3, 4], sources), sources)


def test_oversample_rejects_an_augment_that_changes_the_image_type() -> None:
    with pytest.raises(GeneratorError, match="augment must return a uint8 tensor shaped"):
        _oversample(lambda image: image.float()).generate(0, [1], _sources(1))
