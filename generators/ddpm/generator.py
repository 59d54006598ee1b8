"""`ddpm`: a class-conditional diffusion model (diffusers UNet2DModel) trained from scratch on the real subset,
sampled with DDIM and classifier-free guidance."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from generators.base import Generator, ProgressCallback
from generators.ddpm.settings import WIDTH_MULTIPLE, DDPMSettings
from generators.errors import GeneratorError, check_finite_loss
from spaces import GENERATORS

# diffusers is imported where a model is built, fitted, saved or loaded, not here: importing it takes about 3 s on
# top of torch (measured on the project's 2-core machine), which every trial worker (they import this package for
# the pool and the augmentation policies) and `python -m search.pool` would pay without building a model.
if TYPE_CHECKING:
    from diffusers import UNet2DModel

METADATA_FILE = "generator.json"
UNET_FOLDER = "unet"
SCHEDULER_FOLDER = "scheduler"
METADATA_FORMAT_VERSION = 1

ATTENTION_HEAD_WIDTH = 8
GRADIENT_CLIP_NORM = 1.0


@GENERATORS.register("ddpm", settings=DDPMSettings)
class DDPMGenerator(Generator):
    """Class-conditional DDPM (Ho et al. 2020) with classifier-free guidance (Ho & Salimans 2022).

    The extra class index `num_classes` is the null class. Training predicts v (or the noise, epsilon) with an MSE loss,
    in float32 on CPU and under bf16 autocast on CUDA; sampling uses a moving average of the weights (ema_decay).
    Sampling is deterministic DDIM (eta 0) with
    "trailing" timestep spacing, which starts from the last training timestep and so suits few steps.

    Batch independence: each image's initial noise comes from its own seed, and every UNet call is padded to
    exactly `sampling_batch_size` images, because CPU and GPU kernels choose different arithmetic for different
    batch shapes (a last-bit difference that can flip a uint8 pixel). An image therefore does not depend on
    what shares its call; changing `sampling_batch_size` itself (or the thread count or hardware) may change
    pixel values by rounding, which is why the pool should keep it fixed for one settings hash.
    """

    settings: DDPMSettings

    @classmethod
    def check_data_shape(
        cls, settings: DDPMSettings, *, channels: int, image_size: int, class_names: Sequence[str] = ()
    ) -> None:
        levels = len(settings.block_out_channels)
        if image_size % 2 ** (levels - 1) != 0:
            raise GeneratorError(
                f"generator 'ddpm' setting 'block_out_channels' = {list(settings.block_out_channels)} has {levels} "
                f"levels, which halve the image {levels - 1} times; image_size {image_size} is not divisible by "
                f"{2 ** (levels - 1)}; allowed: at most {_largest_level_count(image_size)} levels for this image size"
            )

    def __init__(self, settings: DDPMSettings, **shape: Any) -> None:
        super().__init__(settings, **shape)
        self.null_class = self.num_classes
        self.training_losses: list[float] = []
        """Mean loss of each optimisation step of the last fit (empty after load)."""
        self.fit_class_counts: list[int] = []
        """Training images per class in the fit (restored by load); a class without any cannot be generated."""
        self._unet: UNet2DModel | None = None
        self._scheduler_config: dict[str, Any] | None = None

    @property
    def is_fitted(self) -> bool:
        return self._unet is not None

    def unet_config(self) -> dict[str, Any]:
        """The UNet2DModel arguments these settings and this data shape give."""
        widths = tuple(self.settings.block_out_channels)
        return {
            "sample_size": self.image_size,
            "in_channels": self.channels,
            "out_channels": self.channels,
            "block_out_channels": widths,
            "layers_per_block": self.settings.layers_per_block,
            # Self-attention only in the middle block, at the lowest resolution: attention at higher resolutions
            # doubled the CPU step time for little gain at these image sizes.
            "down_block_types": ("DownBlock2D",) * len(widths),
            "up_block_types": ("UpBlock2D",) * len(widths),
            "norm_num_groups": _norm_groups(widths),
            "attention_head_dim": ATTENTION_HEAD_WIDTH,
            "num_class_embeds": self.num_classes + 1,
        }

    def fit(
        self, images: np.ndarray, labels: np.ndarray, *, seed: int, progress: ProgressCallback | None = None
    ) -> None:
        from diffusers import DDPMScheduler
        from diffusers.training_utils import EMAModel

        device = torch.device(self.device)
        scheduler = DDPMScheduler(
            num_train_timesteps=self.settings.num_train_timesteps,
            beta_schedule=self.settings.beta_schedule,
            prediction_type=self.settings.prediction_type,
        )
        unet = self._build_unet(seed).to(device).train()
        optimizer = torch.optim.AdamW(unet.parameters(), lr=self.settings.learning_rate)
        # Sampling from averaged weights is the diffusion-model standard; on the phantom data the final weights of a
        # default fit gave smoother, over-bright images and the averaged ones kept more of the real texture.
        moving_average = (
            EMAModel(unet.parameters(), decay=self.settings.ema_decay, use_ema_warmup=True, foreach=True)
            if self.settings.ema_decay > 0
            else None
        )
        training_images = torch.from_numpy(np.array(images, dtype=np.float32) / 127.5 - 1.0).to(device)
        training_labels = torch.from_numpy(np.array(labels, dtype=np.int64)).to(device)
        # Every random draw comes from one CPU generator seeded by `seed`, so a fit is reproducible and draws the
        # same batches on CPU and CUDA.
        random = torch.Generator().manual_seed(seed)
        batch_size = self.settings.batch_size
        total_steps = self.settings.training_steps
        use_autocast = device.type == "cuda"
        losses: list[float] = []
        for step in range(total_steps):
            indices = torch.randint(0, len(training_images), (batch_size,), generator=random)
            noise = torch.randn((batch_size, self.channels, self.image_size, self.image_size), generator=random)
            timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,), generator=random)
            dropped = torch.rand(batch_size, generator=random) < self.settings.class_dropout
            indices, noise, timesteps, dropped = (tensor.to(device) for tensor in (indices, noise, timesteps, dropped))
            class_labels = torch.where(dropped, self.null_class, training_labels[indices])
            clean_images = training_images[indices]
            noisy_images = scheduler.add_noise(clean_images, noise, timesteps)
            if self.settings.prediction_type == "v_prediction":
                target = scheduler.get_velocity(clean_images, noise, timesteps)
            else:
                target = noise
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_autocast):
                prediction = unet(noisy_images, timesteps, class_labels=class_labels).sample
            loss = torch.nn.functional.mse_loss(prediction.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), GRADIENT_CLIP_NORM)
            optimizer.step()
            if moving_average is not None:
                moving_average.step(unet.parameters())
            losses.append(loss.item())
            check_finite_loss("generator 'ddpm' fit", step + 1, losses[-1], self.settings.learning_rate)
            if progress is not None:
                progress(step + 1, total_steps)
        if moving_average is not None:
            moving_average.copy_to(unet.parameters())
        self._unet = unet.eval()
        self._scheduler_config = dict(scheduler.config)
        self.training_losses = losses
        self.fit_class_counts = np.bincount(labels, minlength=self.num_classes).tolist()

    def generate(self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None = None) -> np.ndarray:
        if self._unet is None:
            raise GeneratorError("generator 'ddpm' is not fitted; call fit(images, labels, seed=...) or load(directory) first")
        if self.fit_class_counts[class_index] == 0:
            # Its class embedding never saw a gradient, so the images would be noise that claims a class.
            raise GeneratorError(
                f"generator 'ddpm' cannot generate class {class_index}: the fit had no training images of it "
                f"(images per class: {self.fit_class_counts})"
            )
        seeds = [int(seed) for seed in seeds]
        images = np.empty((len(seeds), self.channels, self.image_size, self.image_size), dtype=np.uint8)
        call_size = self.settings.sampling_batch_size
        for start in range(0, len(seeds), call_size):
            images[start : start + call_size] = self._sample(class_index, seeds[start : start + call_size])
        return images

    def save(self, directory: Path) -> None:
        """Writes unet/ (diffusers save_pretrained, safetensors), scheduler/ and generator.json into `directory`."""
        if self._unet is None or self._scheduler_config is None:
            raise GeneratorError("generator 'ddpm' is not fitted; there is nothing to save")
        from diffusers import DDPMScheduler

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._unet.save_pretrained(directory / UNET_FOLDER)
        DDPMScheduler.from_config(self._scheduler_config).save_pretrained(directory / SCHEDULER_FOLDER)
        metadata = {
            "format_version": METADATA_FORMAT_VERSION,
            "generator": self.name,
            "fit_settings_hash": self.settings.fit_settings_hash,
            "settings": self.settings.model_dump(mode="json"),
            "num_classes": self.num_classes,
            "channels": self.channels,
            "image_size": self.image_size,
            "fit_class_counts": self.fit_class_counts,
            "training_steps_done": len(self.training_losses),
            "final_loss": self.training_losses[-1] if self.training_losses else None,
        }
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))

    def load(self, directory: Path) -> None:
        """Restores a fitted model written by `save`; its fit settings and data shape must match this instance's
        (sampling settings may differ)."""
        from diffusers import DDPMScheduler, UNet2DModel

        directory = Path(directory)
        metadata = _read_metadata(directory)
        expected = {
            "generator": self.name,
            "fit_settings_hash": self.settings.fit_settings_hash,
            "num_classes": self.num_classes,
            "channels": self.channels,
            "image_size": self.image_size,
        }
        mismatched = {key: (metadata.get(key), value) for key, value in expected.items() if metadata.get(key) != value}
        if mismatched:
            described = "; ".join(
                f"{key}: saved {saved!r}, this generator {wanted!r}" for key, (saved, wanted) in mismatched.items()
            )
            raise GeneratorError(f"cannot load the ddpm model in {directory}: it was fit differently ({described})")
        try:
            # Loading may initialise weights before overwriting them; keep that away from the caller's RNG.
            with torch.random.fork_rng(devices=[]):
                unet = UNet2DModel.from_pretrained(directory / UNET_FOLDER)
            scheduler_config = dict(DDPMScheduler.from_pretrained(directory / SCHEDULER_FOLDER).config)
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            raise GeneratorError(f"cannot load the ddpm model in {directory}: {error}") from error
        architecture = {key: unet.config[key] for key in self.unet_config()}
        wanted_architecture = self.unet_config()
        if {key: _as_tuple(value) for key, value in architecture.items()} != {
            key: _as_tuple(value) for key, value in wanted_architecture.items()
        }:
            raise GeneratorError(f"cannot load the ddpm model in {directory}: its UNet config does not match generator.json")
        class_counts = metadata.get("fit_class_counts")
        if not (isinstance(class_counts, list) and len(class_counts) == self.num_classes):
            raise GeneratorError(f"cannot load the ddpm model in {directory}: generator.json lacks fit_class_counts")
        self._unet = unet.to(torch.device(self.device)).eval()
        self._scheduler_config = scheduler_config
        self.training_losses = []
        self.fit_class_counts = [int(count) for count in class_counts]

    def _build_unet(self, seed: int) -> UNet2DModel:
        from diffusers import UNet2DModel

        # Weight initialisation draws from torch's global CPU RNG: seed it for a reproducible fit, then restore it.
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            return UNet2DModel(**self.unet_config())

    @torch.inference_mode()
    def _sample(self, class_index: int, seeds: list[int]) -> np.ndarray:
        from diffusers import DDIMScheduler

        assert self._unet is not None and self._scheduler_config is not None
        device = torch.device(self.device)
        call_size = self.settings.sampling_batch_size
        shape = (self.channels, self.image_size, self.image_size)
        # Padding slots stay zero; their outputs are dropped.
        latents = torch.zeros((call_size, *shape), device=device)
        for position, seed in enumerate(seeds):
            latents[position] = torch.randn(shape, generator=torch.Generator(device).manual_seed(seed), device=device)
        scheduler = DDIMScheduler.from_config(self._scheduler_config, timestep_spacing="trailing")
        scheduler.set_timesteps(self.settings.sampling_steps, device=device)
        latents = latents * scheduler.init_noise_sigma
        # Conditional and unconditional predictions in one doubled call.
        class_labels = torch.cat(
            [torch.full((call_size,), class_index, device=device), torch.full((call_size,), self.null_class, device=device)]
        )
        guidance_scale = self.settings.guidance_scale
        for timestep in scheduler.timesteps:
            # Guidance is linear in the prediction, so it applies to v as it does to epsilon.
            prediction = self._unet(torch.cat([latents, latents]), timestep, class_labels=class_labels).sample
            conditional, unconditional = prediction.chunk(2)
            guided = unconditional + guidance_scale * (conditional - unconditional)
            latents = scheduler.step(guided, timestep, latents, eta=0.0).prev_sample
        images = ((latents[: len(seeds)].clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
        return images.cpu().numpy()


def _norm_groups(widths: Sequence[int]) -> int:
    """The most GroupNorm groups (32, 16 or 8) that divide every width."""
    return next(groups for groups in (32, 16, WIDTH_MULTIPLE) if all(width % groups == 0 for width in widths))


def _largest_level_count(image_size: int) -> int:
    levels = 1
    while image_size % 2**levels == 0:
        levels += 1
    return levels


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def _read_metadata(directory: Path) -> dict[str, Any]:
    path = directory / METADATA_FILE
    if not path.is_file():
        raise GeneratorError(
            f"cannot load the ddpm model in {directory}: {METADATA_FILE} is missing (not a saved ddpm generator)"
        )
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise GeneratorError(f"cannot load the ddpm model in {directory}: {METADATA_FILE} is unreadable ({error})") from error
    if not isinstance(metadata, dict):
        raise GeneratorError(f"cannot load the ddpm model in {directory}: {METADATA_FILE} does not hold an object")
    return metadata
