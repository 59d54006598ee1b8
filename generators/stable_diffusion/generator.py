"""`stable_diffusion`: a pretrained Stable Diffusion (diffusers) making images from class prompts (txt2img) or
variations of the trial's own real images (img2img, DA-Fusion), optionally fine-tuned on the fit subset with a peft
LoRA adapter or DreamBooth (generators.stable_diffusion.fine_tune)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from generators.base import Generator, ProgressCallback
from generators.errors import GeneratorError
from generators.stable_diffusion.model import (
    check_class_names,
    inference_dtype,
    load_pipeline,
    locate_model,
    native_resolution,
    prompt_text,
    rare_tokens,
    text_encoder_lora_problem,
    to_dataset_images,
    to_model_images,
    with_scheduler,
)
from generators.stable_diffusion.settings import StableDiffusionSettings
from spaces import GENERATORS

# diffusers is imported where a pipeline is built, as in generators.ddpm: importing it costs seconds that every
# process importing this package would pay.
if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

METADATA_FILE = "generator.json"
ADAPTER_FILE = "pytorch_lora_weights.safetensors"
"""diffusers' LoRA file name: save_lora_weights writes it and load_lora_weights reads it."""
METADATA_FORMAT_VERSION = 1


@GENERATORS.register("stable_diffusion", settings=StableDiffusionSettings)
class StableDiffusionGenerator(Generator):
    """Images of a class from its prompt (see StableDiffusionSettings.prompt), resized to the dataset's size and
    converted to its channel count.

    Batch independence: image i starts from its own torch.Generator seeded by seeds[i] (diffusers draws latents,
    and the VAE sample of an img2img source, per generator), and every pipeline call is padded to `batch_size`
    prompts, so the batch shape, and with it the kernels' arithmetic, is the same for every image."""

    settings: StableDiffusionSettings

    @classmethod
    def check_data_shape(
        cls, settings: StableDiffusionSettings, *, channels: int, image_size: int, class_names: Sequence[str] = ()
    ) -> None:
        if class_names:
            check_class_names(list(settings.prompts), class_names)
        if settings.train_text_encoder and settings.needs_fit and (problem := text_encoder_lora_problem()):
            raise GeneratorError(
                f"generator 'stable_diffusion' setting 'train_text_encoder' = true cannot run here: {problem}; allowed: "
                "false (LoRA on the UNet only), or upgrade peft"
            )
        locate_model(settings.model, check_hub=True)
        if channels not in (1, 3):
            raise GeneratorError(f"generator 'stable_diffusion' makes 1- or 3-channel images; the dataset has {channels}")

    def __init__(self, settings: StableDiffusionSettings, **shape: Any) -> None:
        super().__init__(settings, **shape)
        self.tokens: list[str] = []
        """Per class, the rare token a fine-tune taught its look (empty without a fine-tune)."""
        self.training_losses: list[float] = []
        self.fit_class_counts: list[int] = []
        self._adapter_folder: tempfile.TemporaryDirectory[str] | None = None
        self._pipeline: DiffusionPipeline | None = None

    @property
    def is_fitted(self) -> bool:
        return not self.needs_fit or self._adapter_folder is not None

    def prompt(self, class_index: int) -> str:
        name = self.class_names[class_index]
        return prompt_text(self.settings.template_for(name), name, self.tokens[class_index] if self.tokens else "")

    def class_tokens(self, tokenizer: Any) -> list[str]:
        """One rare token per class, none a word of the prompts or class names."""
        avoid = [self.settings.prompt, *self.settings.prompts.values(), *self.class_names]
        return rare_tokens(tokenizer, self.num_classes, avoid)

    # ----- fit, save, load

    def fit(self, images: np.ndarray, labels: np.ndarray, *, seed: int, progress: ProgressCallback | None = None) -> None:
        if not self.needs_fit:
            return
        from generators.stable_diffusion.fine_tune import fine_tune

        folder = tempfile.TemporaryDirectory(prefix="stable-diffusion-adapter-")
        result = fine_tune(
            self.settings, images=np.asarray(images), labels=np.asarray(labels), class_names=self.class_names,
            token_rule=self.class_tokens, device=self.device, seed=seed, progress=progress, destination=Path(folder.name),
        )
        self.tokens = result.tokens
        self.training_losses = result.losses
        self.fit_class_counts = np.bincount(labels, minlength=self.num_classes).tolist()
        self._use_adapter(folder)

    def save(self, directory: Path) -> None:
        """Writes the adapter (diffusers' LoRA safetensors) and generator.json (tokens, settings, fit summary)."""
        if not self.needs_fit:
            return
        if self._adapter_folder is None:
            raise GeneratorError("generator 'stable_diffusion' is not fitted; there is nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(self._adapter_folder.name) / ADAPTER_FILE, directory / ADAPTER_FILE)
        metadata = {
            "format_version": METADATA_FORMAT_VERSION,
            "generator": self.name,
            "fit_settings_hash": self.settings.fit_settings_hash,
            "settings": self.settings.model_dump(mode="json"),
            "class_names": list(self.class_names),
            "tokens": self.tokens,
            "fit_class_counts": self.fit_class_counts,
            "training_steps_done": len(self.training_losses),
            "final_loss": self.training_losses[-1] if self.training_losses else None,
        }
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))

    def load(self, directory: Path) -> None:
        """Restores an adapter written by `save`; its fit settings and classes must match (sampling may differ)."""
        if not self.needs_fit:
            return
        directory = Path(directory)
        try:
            metadata = json.loads((directory / METADATA_FILE).read_text())
        except (OSError, ValueError) as error:
            raise GeneratorError(f"cannot load the stable_diffusion adapter in {directory}: {METADATA_FILE}: {error}") from None
        expected = {
            "generator": self.name, "fit_settings_hash": self.settings.fit_settings_hash, "class_names": list(self.class_names),
        }
        found = {name: metadata.get(name) for name in expected}
        if found != expected or not (directory / ADAPTER_FILE).is_file():
            raise GeneratorError(
                f"cannot load the stable_diffusion adapter in {directory}: it was saved for {found}, this generator "
                f"is {expected}, or {ADAPTER_FILE} is missing"
            )
        folder = tempfile.TemporaryDirectory(prefix="stable-diffusion-adapter-")
        shutil.copyfile(directory / ADAPTER_FILE, Path(folder.name) / ADAPTER_FILE)
        self.tokens = [str(token) for token in metadata["tokens"]]
        self.fit_class_counts = [int(count) for count in metadata["fit_class_counts"]]
        self.training_losses = []
        self._use_adapter(folder)

    def _use_adapter(self, folder: tempfile.TemporaryDirectory[str]) -> None:
        # A fit and a load both sample through an adapter read from its file, so their images are the same.
        if self._adapter_folder is not None:
            self._adapter_folder.cleanup()
        self._adapter_folder = folder
        self._pipeline = None

    # ----- generate

    def pipeline(self) -> DiffusionPipeline:
        """The sampling pipeline (img2img or txt2img) with the adapter when fitted, loaded on first use."""
        if self._pipeline is None:
            if not self.is_fitted:
                raise GeneratorError(
                    "generator 'stable_diffusion' with fine_tune is not fitted; call fit(images, labels, seed=...) or "
                    "load(directory) first"
                )
            pipeline = load_pipeline(self.settings.model, device=self.device, dtype=inference_dtype(self.device))
            if self._adapter_folder is not None:
                _load_adapter(pipeline, Path(self._adapter_folder.name))
            pipeline = with_scheduler(pipeline, self.settings.scheduler)
            if self.image_to_image:
                from diffusers import StableDiffusionImg2ImgPipeline

                pipeline = StableDiffusionImg2ImgPipeline(**pipeline.components, requires_safety_checker=False)
                pipeline.set_progress_bar_config(disable=True)
            self._pipeline = pipeline
        return self._pipeline

    @property
    def resolution(self) -> int:
        return self.settings.resolution or native_resolution(self.pipeline())

    def generate(self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None = None) -> np.ndarray:
        if self.image_to_image and (sources is None or len(sources) != len(seeds)):
            raise GeneratorError("generator 'stable_diffusion' in img2img mode needs one source image per seed")
        seeds = [int(seed) for seed in seeds]
        images = np.empty((len(seeds), self.channels, self.image_size, self.image_size), dtype=np.uint8)
        call_size = self.settings.batch_size
        for start in range(0, len(seeds), call_size):
            chunk = slice(start, start + call_size)
            images[chunk] = self._sample(class_index, seeds[chunk], None if sources is None else sources[chunk])
        return images

    @torch.inference_mode()
    def _sample(self, class_index: int, seeds: list[int], sources: np.ndarray | None) -> np.ndarray:
        pipeline = self.pipeline()
        call_size = self.settings.batch_size
        resolution = self.resolution
        # Padding slots get seed 0 (and a black source); their images are dropped.
        generators = [torch.Generator().manual_seed(seed) for seed in seeds + [0] * (call_size - len(seeds))]
        arguments: dict[str, Any] = {
            "prompt": [self.prompt(class_index)] * call_size,
            "negative_prompt": [self.settings.negative_prompt] * call_size if self.settings.negative_prompt else None,
            "num_inference_steps": self.settings.sampling_steps,
            "guidance_scale": self.settings.guidance_scale,
            "generator": generators,
            "output_type": "pt",
        }
        if self.image_to_image:
            assert sources is not None
            padded = np.zeros((call_size, *sources.shape[1:]), dtype=np.uint8)
            padded[: len(sources)] = sources
            arguments["image"] = to_model_images(padded, resolution, self.device, pipeline.dtype)
            arguments["strength"] = self.settings.strength
        else:
            arguments["height"] = arguments["width"] = resolution
        output = pipeline(**arguments).images
        return to_dataset_images(output[: len(seeds)], self.channels, self.image_size)


def _load_adapter(pipeline: DiffusionPipeline, folder: Path) -> None:
    from diffusers.utils import logging as diffusers_logging

    # diffusers warns, on every load, that a UNet-only adapter has no text-encoder weights: that is expected here.
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        pipeline.load_lora_weights(str(folder), weight_name=ADAPTER_FILE)
    finally:
        diffusers_logging.set_verbosity(verbosity)
