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
    DDPMSettings,
    Generator,
    GeneratorError,
    OversampleSettings,
    create_generator,
)
from spaces import GENERATORS, ConfigError, GeneratorSettings, SyntheticConfig, TrialConfig, setting

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


def generator_settings(name: str, **values: object) -> GeneratorSettings:
    """Settings as a trial configuration validates them (the one place they are validated)."""
    return SyntheticConfig.model_validate({"generator": name, "settings": values}).settings


def _tiny_ddpm(**overrides: object) -> DDPMGenerator:
    settings = generator_settings("ddpm", **TINY_DDPM_SETTINGS | overrides)
    generator = create_generator(settings, num_classes=2, channels=1, image_size=TINY_SIZE)
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
    assert {"ddpm", "oversample"} <= set(GENERATORS.names())
    assert DDPMSettings().needs_fit and not DDPMSettings().image_to_image
    assert OversampleSettings().image_to_image and not OversampleSettings().needs_fit
    assert GENERATORS.entry("ddpm").settings is DDPMSettings and GENERATORS.entry("oversample").settings is OversampleSettings


def test_unknown_generator_names_the_field_and_the_registered_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"synthetic.generator: 'dpm' is not allowed; unknown generator; "
        r"registered: ddpm, openai_images, oversample, stable_diffusion; did you mean 'ddpm'",
    ):
        _validated({"generator": "dpm"})


def _validated(synthetic: dict) -> SyntheticConfig:
    return TrialConfig.from_mapping({"synthetic": synthetic}).synthetic


def test_settings_fill_defaults_and_take_integral_floats_from_samplers() -> None:
    settings = generator_settings("ddpm", layers_per_block=2.0, guidance_scale=3)
    assert settings.layers_per_block == 2 and isinstance(settings.layers_per_block, int)
    assert settings.guidance_scale == 3.0 and isinstance(settings.guidance_scale, float)
    assert settings.sampling_steps == DDPMSettings.model_fields["sampling_steps"].default
    assert settings.block_out_channels == (16, 32, 64)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"layer_per_block": 2}, r"synthetic.settings.layer_per_block: 2 .*unknown setting.*did you mean 'layers_per_block'"),
        ({"layers_per_block": 2.5}, r"synthetic.settings.layers_per_block: 2.5 .*valid integer"),
        ({"layers_per_block": 9}, r"synthetic.settings.layers_per_block: 9 .*less than or equal to 4"),
        ({"guidance_scale": "high"}, r"synthetic.settings.guidance_scale: 'high' .*valid number"),
        ({"class_dropout": math.nan}, r"synthetic.settings.class_dropout: nan .*finite number"),
        ({"block_out_channels": [12, 24]}, r"synthetic.settings.block_out_channels.0: 12 .*multiple of 8"),
        ({"block_out_channels": 32}, r"synthetic.settings.block_out_channels: 32 .*valid tuple"),
        (
            {"sampling_steps": 100, "num_train_timesteps": 50},
            r"synthetic.settings: .*sampling_steps = 100 is more than num_train_timesteps = 50",
        ),
        (
            {"beta_schedule": "cosine"},
            r"synthetic.settings.beta_schedule: 'cosine' .*'linear', 'scaled_linear' or 'squaredcos_cap_v2'",
        ),
        ({"prediction_type": "sample"}, r"synthetic.settings.prediction_type: 'sample' .*'epsilon' or 'v_prediction'"),
    ],
)
def test_bad_ddpm_settings_name_the_setting_value_and_what_is_allowed(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _validated({"generator": "ddpm", "settings": settings})


def test_settings_hash_ignores_key_order_and_operational_settings() -> None:
    forward = generator_settings("ddpm", guidance_scale=3, layers_per_block=2)
    backward = generator_settings("ddpm", layers_per_block=2.0, guidance_scale=3.0)
    assert forward.settings_hash == backward.settings_hash and len(forward.settings_hash) == 12
    assert forward.settings_hash != generator_settings("ddpm", guidance_scale=4, layers_per_block=2).settings_hash
    assert (
        forward.settings_hash
        == generator_settings("ddpm", guidance_scale=3, layers_per_block=2, sampling_batch_size=7).settings_hash
    )
    # Explicit defaults name the same images as omitted ones.
    assert generator_settings("ddpm").settings_hash == generator_settings("ddpm", sampling_steps=25).settings_hash


def test_fit_settings_hash_is_shared_across_sampling_settings() -> None:
    assert (
        generator_settings("ddpm", guidance_scale=1.0).fit_settings_hash
        == generator_settings("ddpm", sampling_steps=5).fit_settings_hash
    )
    assert generator_settings("ddpm").fit_settings_hash != generator_settings("ddpm", training_steps=7).fit_settings_hash


def test_settings_hash_is_the_sha256_of_canonical_json(monkeypatch: pytest.MonkeyPatch) -> None:
    class HashedSettings(GeneratorSettings):
        strength: float = setting(0.5)
        widths: tuple[int, ...] = setting((8, 16), affects="fit")
        batch_size: int = setting(4, affects="nothing")

    monkeypatch.setattr(GENERATORS, "_entries", dict(GENERATORS._entries))
    GENERATORS.register("hash_test", settings=HashedSettings)(object)
    # Fixed text, not Python's per-process hash(): a changed hash would orphan every image a pool already stored.
    canonical = b'{"generator":"hash_test","settings":{"strength":0.25,"widths":[8,16]}}'
    assert HashedSettings(strength=0.25).settings_hash == hashlib.sha256(canonical).hexdigest()[:12]
    assert HashedSettings(strength=0.25, batch_size=9).settings_hash == HashedSettings(strength=0.25).settings_hash
    fit_only = b'{"generator":"hash_test","settings":{"widths":[8,16]}}'
    assert HashedSettings(strength=0.25).fit_settings_hash == hashlib.sha256(fit_only).hexdigest()[:12]


def test_a_generator_registers_once_with_a_settings_model_of_its_own() -> None:
    with pytest.raises(ValueError, match="generator 'ddpm' is already registered"):
        GENERATORS.register("ddpm", settings=type("Other", (GeneratorSettings,), {}))(object)
    with pytest.raises(ValueError, match="needs a GeneratorSettings subclass of its own"):
        GENERATORS.register("ddpm_again", settings=DDPMSettings)(object)
    with pytest.raises(ValueError, match="generator 'dpm' is not registered"):
        GENERATORS.unregister("dpm")


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
    assert generator.settings.fit_settings_hash != fitted_ddpm.settings.fit_settings_hash
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


def test_ddpm_refuses_generating_before_fit() -> None:
    with pytest.raises(GeneratorError, match="not fitted"):
        _tiny_ddpm().generate(0, [1])


def test_ddpm_rejects_an_image_size_its_levels_cannot_halve() -> None:
    settings = generator_settings("ddpm", block_out_channels=[8, 16, 32])
    with pytest.raises(GeneratorError, match=r"'block_out_channels' = \[8, 16, 32\].*image_size 18 .*at most 2 levels"):
        DDPMGenerator.check_data_shape(settings, channels=1, image_size=18)
    DDPMGenerator.check_data_shape(settings, channels=1, image_size=16)


def test_ddpm_refuses_a_class_the_fit_never_saw() -> None:
    images, labels = _two_class_images(2)
    generator = _tiny_ddpm(training_steps=1)
    generator.fit(images[labels == 0], labels[labels == 0], seed=0)
    assert generator.generate(0, [1]).shape == (1, 1, TINY_SIZE, TINY_SIZE)
    with pytest.raises(GeneratorError, match=r"cannot generate class 1: the fit had no training images of it"):
        generator.generate(1, [1])


# --- oversample -----------------------------------------------------------------------------------------------


def _sources(count: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(count, channels, 8, 8), dtype=np.uint8)


def _oversample(**settings: object) -> Generator:
    settings = settings or {"rotation_probability": 0.5, "rotation_magnitude": 0.2, "gaussian_noise_probability": 1.0}
    return create_generator(generator_settings("oversample", **settings), num_classes=3, channels=3, image_size=8)


def test_oversample_takes_the_custom_policys_settings() -> None:
    custom_fields = set(type(SyntheticConfig.model_validate({"generator": "oversample"}).settings).model_fields)
    assert "rotation_probability" in custom_fields and "gaussian_noise_magnitude" in custom_fields
    assert generator_settings("oversample", rotation_probability=0.5).settings_hash != generator_settings(
        "oversample", rotation_probability=0.6
    ).settings_hash
    with pytest.raises(ConfigError, match=r"synthetic.settings.rotation: 0.5 .*unknown setting.*rotation_probability"):
        _validated({"generator": "oversample", "settings": {"rotation": 0.5}})
    with pytest.raises(ConfigError, match=r"synthetic.settings.shear_magnitude: 2 .*less than or equal to 1"):
        _validated({"generator": "oversample", "settings": {"shear_magnitude": 2}})


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


def test_oversample_without_operations_returns_the_sources() -> None:
    sources = _sources(4)
    np.testing.assert_array_equal(_oversample(rotation_probability=0.0).generate(2, [1, 2, 3, 4], sources), sources)


def test_settings_that_differ_only_in_sampling_share_one_fit_in_the_pool(tmp_path: Path) -> None:
    from generators.actors.generator_actor import GeneratorActor
    from generators.pool import PoolKey, SyntheticPool

    images, labels = _two_class_images()
    ids = [f"train-{index}" for index in range(len(images))]
    root = str(tmp_path / "pool")
    SyntheticPool(root).register_dataset("tiny", ids, image_shape=images.shape[1:])
    fit_info = {"fit_subset_ids": ids, "dataset": "tiny"}

    def fit_or_load(guidance_scale: float, training_steps: int = 20) -> tuple[PoolKey, dict, GeneratorActor]:
        changes = {"guidance_scale": guidance_scale, "training_steps": training_steps}
        settings = generator_settings("ddpm", **TINY_DDPM_SETTINGS | changes)
        key = PoolKey(generator="ddpm", settings_hash=settings.settings_hash, dataset="tiny", fit_subset="all")
        actor = GeneratorActor(settings, num_classes=2, channels=1, image_size=TINY_SIZE, device="cpu")
        return key, actor.fit_or_load(root, key, images, labels, fit_info, 0), actor

    first_key, first, first_actor = fit_or_load(5.0)
    second_key, second, second_actor = fit_or_load(1.0)
    assert (first["action"], second["action"]) == ("fitted", "loaded")
    assert second["fit_shared_from"] == first_key.folder_name and second["settings"]["guidance_scale"] == 1.0
    assert second["fit_seconds"] == first["fit_seconds"]
    # The same fitted weights sample differently under the other guidance, as a fit of their own would not.
    assert not np.array_equal(
        first_actor.generate(1, [3], key=first_key, pool_root=root), second_actor.generate(1, [3], key=second_key, pool_root=root)
    )
    # A key with its own copy stays whole when the one it came from is removed.
    assert SyntheticPool(root).remove("ddpm", first_key.settings_hash) == 0
    assert fit_or_load(1.0)[1]["action"] == "loaded"
    # Other fit settings are another fit.
    assert fit_or_load(5.0, training_steps=21)[1]["action"] == "fitted"
