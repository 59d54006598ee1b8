"""The `stable_diffusion` generator on a tiny Stable Diffusion built from configs (no downloads): txt2img and img2img,
LoRA and DreamBooth fits that change the images and reload identically, batch independence, the dataset's shape,
validation before Ray starts, the pool's leakage rules, and a sweep drawing its images from the pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import pytest
import ray
import yaml
from safetensors import safe_open

from generators import GeneratorError, StableDiffusionGenerator, StableDiffusionSettings
from generators.actors.generator_actor import FitProgressBar, create_generator_actors
from generators.actors.pool_actor import get_synthetic_pool
from generators.pool import LeakageError, PoolKey, SyntheticPool
from generators.stable_diffusion.generator import ADAPTER_FILE
from generators.stable_diffusion.model import text_encoder_lora_problem
from search import pool as pool_cli
from search.run import main
from search.settings.sweep_checks import check_generators
from spaces import ConfigError
from trainables.datasets import load_dataset

CLASSES = ("mild_demented", "healthy")


# Tiny models: on a machine shared with other jobs, two torch threads that wait on each other are slower than one.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model(tiny_stable_diffusion: Path) -> str:
    return str(tiny_stable_diffusion)


@pytest.fixture(scope="module")
def base_generator(tiny_model: str) -> StableDiffusionGenerator:
    """txt2img from the tiny model without a fine-tune (its pipeline loads once for the module)."""
    return make(sd_settings(tiny_model))


def sd_settings(model: str, **values: object) -> StableDiffusionSettings:
    defaults = {"model": model, "mode": "txt2img", "sampling_steps": 2, "batch_size": 3, "guidance_scale": 3.0}
    return StableDiffusionSettings(**{**defaults, **values})


def make(settings: StableDiffusionSettings, channels: int = 1, image_size: int = 16) -> StableDiffusionGenerator:
    return StableDiffusionGenerator(settings, num_classes=2, channels=channels, image_size=image_size, class_names=CLASSES)


def real_images(count: int, channels: int = 1, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, channels, size, size), dtype=np.uint8)


def test_txt2img_images_have_the_dataset_shape_and_do_not_depend_on_their_batch(
    tiny_model: str, base_generator: StableDiffusionGenerator
) -> None:
    settings = base_generator.settings
    assert (settings.image_to_image, settings.needs_fit) == (False, False)
    generator = base_generator
    assert generator.prompt(0) == "a medical image of mild demented"
    images = generator.generate(0, [5, 6, 7, 8])
    assert images.shape == (4, 1, 16, 16) and images.dtype == np.uint8
    # Seed 7 alone, and in a call of other size and neighbours (padded to batch_size either way): the same pixels.
    np.testing.assert_array_equal(generator.generate(0, [7])[0], images[2])
    np.testing.assert_array_equal(generator.generate(0, [1, 7, 2, 3])[1], images[2])
    assert not np.array_equal(images[0], images[1])
    assert not np.array_equal(generator.generate(1, [5])[0], images[0]), "another class's prompt gives another image"
    # RGB and a size other than the model's 32 px: resized and not grayscale.
    colour = make(settings, channels=3, image_size=40).generate(0, [5])
    assert colour.shape == (1, 3, 40, 40) and not np.array_equal(colour[0, 0], colour[0, 1])


def test_img2img_varies_each_source_independently_of_the_batch(tiny_model: str) -> None:
    settings = sd_settings(tiny_model, mode="img2img", strength=0.5, sampling_steps=4)
    assert settings.image_to_image
    generator = make(settings)
    sources = real_images(4)
    images = generator.generate(1, [1, 2, 3, 4], sources)
    assert images.shape == (4, 1, 16, 16)
    np.testing.assert_array_equal(generator.generate(1, [3], sources[2:3])[0], images[2])
    other_source = generator.generate(1, [3], sources[0:1])[0]
    assert not np.array_equal(other_source, images[2]), "the image follows its source"
    # A weaker strength keeps more of the source.
    weak = make(sd_settings(tiny_model, mode="img2img", strength=0.25, sampling_steps=4)).generate(1, [1, 2, 3, 4], sources)
    assert np.abs(weak.astype(int) - sources).mean() < np.abs(images.astype(int) - sources).mean()
    with pytest.raises(GeneratorError, match="one source image per seed"):
        generator.generate(1, [1, 2])


@pytest.mark.parametrize("fine_tune", ["lora", "dreambooth"])
def test_a_fit_changes_the_images_is_saved_as_a_diffusers_lora_and_reloads_to_the_same_images(
    tiny_model: str, base_generator: StableDiffusionGenerator, fine_tune: str, tmp_path: Path
) -> None:
    values = {"fine_tune": fine_tune, "training_steps": 4, "learning_rate": 1e-2, "lora_rank": 4, "lora_alpha": 2.0,
              "num_class_images": 1, "class_image_steps": 2, "prior_loss_weight": 0.5}
    settings = sd_settings(tiny_model, **values)
    assert settings.needs_fit
    generator = make(settings)
    assert not generator.is_fitted
    with pytest.raises(GeneratorError, match="not fitted"):
        generator.generate(0, [1])
    steps: list[tuple[int, int]] = []
    labels = np.array([0, 0, 0, 1, 1])
    generator.fit(real_images(5), labels, seed=3, progress=lambda step, total: steps.append((step, total)))
    assert steps == [(step, 4) for step in range(1, 5)] and len(generator.training_losses) == 4
    assert len(set(generator.tokens)) == 2 and generator.prompt(0) == f"a medical image of {generator.tokens[0]} mild demented"
    fitted = generator.generate(0, [1, 2])
    assert not np.array_equal(fitted, base_generator.generate(0, [1, 2]))

    generator.save(tmp_path)
    with safe_open(str(tmp_path / ADAPTER_FILE), framework="pt") as adapter:
        keys = list(adapter.keys())
    assert keys and all(key.startswith("unet.") and "lora" in key for key in keys)
    restored = make(settings)
    restored.load(tmp_path)
    np.testing.assert_array_equal(restored.generate(0, [1, 2]), fitted)
    # Another fit's settings cannot take this adapter.
    with pytest.raises(GeneratorError, match="cannot load the stable_diffusion adapter"):
        make(sd_settings(tiny_model, **{**values, "training_steps": 5})).load(tmp_path)


def test_settings_that_diffusers_cannot_run_are_refused_with_what_is_allowed(tiny_model: str, tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match=r"int\(0.1 x 5\) = 0 .*strength x sampling_steps >= 1"):
        sd_settings(tiny_model, mode="img2img", strength=0.1, sampling_steps=5)
    sd_settings(tiny_model, mode="txt2img", strength=0.1, sampling_steps=5)  # strength does not matter to txt2img
    with pytest.raises(pydantic.ValidationError, match=r"unknown placeholder.*\['name'\].*allowed: \{class\}, \{token\}"):
        sd_settings(tiny_model, prompt="an x-ray of {name}")

    data = load_dataset("phantom", image_size=16, phantom_count=60).for_search()
    with pytest.raises(ConfigError, match=r"prompts' names unknown class\(es\) \['mild'\]; allowed: non_demented"):
        check_generators([sd_settings(tiny_model, prompts={"mild": "x"})], data, "space")
    check_generators([sd_settings(tiny_model, prompts={"mild_demented": "an MRI of {class}"})], data, "space")
    with pytest.raises(ConfigError, match="no such folder, and not a hub id.*tiny_stable_diffusion"):
        check_generators([sd_settings(str(tmp_path / "missing"))], data, "space")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="folder without model_index.json"):
        check_generators([sd_settings(str(tmp_path / "empty"))], data, "space")


def test_the_command_refuses_a_prompt_for_an_unknown_class_in_one_line_before_ray(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = {"fixed": {
        "synthetic.proportion": 0.5, "synthetic.generator": "stable_diffusion", "synthetic.settings.model": tiny_model,
        "synthetic.settings.prompts.severe": "an MRI of {class}",
    }}
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(space))
    was_running = ray.is_initialized()
    assert main(["--space", str(space_file), "--data", "phantom", "--phantom-count", "100", "--storage", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: synthetic.settings")
    assert "unknown class(es) ['severe']; allowed: non_demented, very_mild_demented" in error[0]
    assert ray.is_initialized() == was_running


def test_an_uncached_hub_id_offline_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    generator = make(StableDiffusionSettings(model="nobody-here/not-a-model", mode="txt2img"))
    with pytest.raises(GeneratorError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set; .*hf download"):
        generator.generate(0, [1])


def test_a_text_encoder_adapter_is_refused_before_ray_where_peft_is_too_old(tiny_model: str) -> None:
    problem = text_encoder_lora_problem()
    settings = sd_settings(tiny_model, fine_tune="lora", train_text_encoder=True)
    if problem is None:
        pytest.skip("this peft can put adapters on transformers models")
    with pytest.raises(GeneratorError, match="'train_text_encoder' = true cannot run here: .*peft"):
        StableDiffusionGenerator.check_data_shape(settings, channels=1, image_size=16, class_names=CLASSES)


def test_img2img_through_the_pool_uses_only_the_trials_own_training_images(
    tiny_model: str, tmp_path: Path, ray_cluster: None
) -> None:
    settings = sd_settings(tiny_model, mode="img2img", strength=0.5, sampling_steps=2)
    root = str(tmp_path / "pool")
    train_ids = [f"train/{index:03d}" for index in range(6)]
    SyntheticPool(root).register_dataset("sdtest", train_ids, image_shape=(1, 16, 16))
    key = PoolKey(generator="stable_diffusion", settings_hash=settings.settings_hash, dataset="sdtest")
    actors = create_generator_actors(1, {"num_cpus": 0}, key, settings, num_classes=2, channels=1, image_size=16,
                                     class_names=CLASSES)
    pool = get_synthetic_pool(root)
    try:
        images_by_id = dict(zip(train_ids, real_images(6)))
        subset = train_ids[2:4]
        sources = {image_id: images_by_id[image_id] for image_id in subset}
        served, records = ray.get(pool.request.remote(key, 0, 4, subset, subset, sources), timeout=120)
        assert [record["source_id"] for record in records] == [subset[0], subset[1], subset[0], subset[1]]
        local = make(settings)
        for image, record in zip(served, records):
            expected = local.generate(0, [record["seed"]], images_by_id[record["source_id"]][None])[0]
            np.testing.assert_array_equal(image, expected)
        with pytest.raises(LeakageError, match=r"inside the trial's real subset.*train/000"):
            ray.get(pool.request.remote(key, 0, 2, subset, [train_ids[0]], {train_ids[0]: images_by_id[train_ids[0]]}))
        with pytest.raises(LeakageError, match="training images only.*val/001"):
            ray.get(pool.request.remote(key, 0, 2, subset, [*subset, "val/001"], sources))
    finally:
        for actor in [*actors, pool]:
            ray.kill(actor)


@ray.remote
def _fit_progress_lines(steps: int) -> list[dict]:
    """What a generator actor's fit bar prints for a fit of `steps` quick steps."""
    import contextlib
    import io
    import json

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        bar = FitProgressBar("fit test")
        for step in range(1, steps + 1):
            bar(step, steps)
        bar.close()
    return [json.loads(line) for line in printed.getvalue().splitlines() if line.strip()]


def test_a_fit_in_an_actor_reports_progress_as_one_ray_bar_at_most_once_a_second(ray_cluster: None) -> None:
    lines = ray.get(_fit_progress_lines.remote(5000), timeout=60)
    # Ray's driver turns these lines into one tqdm bar; 5000 fast steps print a few, not 5000.
    assert 2 <= len(lines) <= 4 and len({line["uuid"] for line in lines}) == 1
    assert lines[-1]["x"] == lines[-1]["total"] == 5000 and lines[-1]["closed"] and lines[-1]["desc"] == "fit test"


@pytest.mark.slow
def test_a_sweep_fine_tunes_once_and_draws_stable_diffusion_images_from_the_pool(
    tiny_model: str, tmp_path: Path, ray_cluster: None, capsys: pytest.CaptureFixture[str]
) -> None:
    generator_keys = {"when": {"synthetic.proportion": [0.5]}}
    space = {
        "fixed": {"training.epochs": 1, "training.batch_size": 32, "model.backbone": "basic_cnn", "real_fraction": 0.5},
        "parameters": {
            "synthetic.proportion": {"choice": [0.0, 0.5]},
            "synthetic.generator": {"choice": ["stable_diffusion"], **generator_keys},
            "synthetic.settings.model": {"choice": [tiny_model], **generator_keys},
            "synthetic.settings.mode": {"choice": ["img2img"], **generator_keys},
            "synthetic.settings.fine_tune": {"choice": ["lora"], **generator_keys},
            "synthetic.settings.training_steps": {"choice": [2], **generator_keys},
            "synthetic.settings.sampling_steps": {"choice": [2], **generator_keys},
            "synthetic.settings.batch_size": {"choice": [16], **generator_keys},
            "synthetic.settings.prompts.mild_demented": {"choice": ["an MRI of {token} mild dementia"], **generator_keys},
        },
    }
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(space))
    assert main([
        "--space", str(space_file), "--data", "phantom", "--phantom-count", "120", "--image-size", "16",
        "--searcher", "grid", "--scheduler", "none", "--storage", str(tmp_path / "results"), "--name", "sd",
        "--wandb-mode", "disabled", "--no-final-test",
    ]) == 0
    leaderboard = pd.read_csv(tmp_path / "results" / "sd" / "leaderboard.csv")
    assert len(leaderboard) == 2 and set(leaderboard["status"]) == {"ok"}
    drawn = leaderboard[leaderboard["synthetic.proportion"] > 0]
    assert (drawn["synthetic_images"] > 0).all()

    pool = SyntheticPool(str(tmp_path / "results" / "synthetic_pool"))
    rows = [row for row in pool.summary() if row["generator"] == "stable_diffusion"]
    assert rows and sum(row["count"] for row in rows) == int(drawn["synthetic_images"].sum())
    train_ids = set(load_dataset("phantom", image_size=16, phantom_count=120).train.ids)
    key = PoolKey.from_dict(rows[0])
    assert key.fit_subset is not None and pool.has_generator(key)
    fit = pool.generator_info(key)
    assert set(fit["fit_subset_ids"]) <= train_ids
    for row in rows:
        for record in pool.records(PoolKey.from_dict(row), row["class_index"]):
            # img2img sources are training images the generator was fit on (the trial's own subset).
            assert record.source_id in set(fit["fit_subset_ids"])

    assert pool_cli.main(["--pool", str(tmp_path / "results" / "synthetic_pool"), "list"]) == 0
    listing = capsys.readouterr().out
    assert f"model={tiny_model}" in listing and "fine_tune=lora" in listing and "lora_rank=8 training_steps=2" in listing
