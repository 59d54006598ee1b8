"""The `stable_diffusion` generator's fit: a peft LoRA adapter on the UNet's attention projections (and optionally
the text encoder's) trained on the fit subset, one rare token per class in the prompts; DreamBooth adds prior
preservation on images the base model makes of each class. The adapter is written in diffusers' LoRA format."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generators.base import ProgressCallback
from generators.errors import check_finite_loss
from generators.stable_diffusion.model import load_pipeline, native_resolution, prompt_text, to_model_images
from generators.stable_diffusion.settings import StableDiffusionSettings

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
GRADIENT_CLIP_NORM = 1.0
ENCODE_BATCH = 8
PRIOR_BATCH = 4
PRIOR_GUIDANCE_SCALE = 7.5


@dataclass(frozen=True)
class FineTuneResult:
    tokens: list[str]
    """Per class, the rare token its instance prompt used."""
    losses: list[float]
    """The loss of each step."""


def fine_tune(
    settings: StableDiffusionSettings,
    *,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    token_rule: Callable[[Any], list[str]],
    device: str,
    seed: int,
    progress: ProgressCallback | None,
    destination: Path,
) -> FineTuneResult:
    """Trains the adapter on exactly (images, labels) and writes it to `destination` (save_lora_weights).

    Float32 weights with bf16 autocast on CUDA; every random draw (batches, noise, timesteps, adapter init, prior
    images) comes from `seed`, so a fit is reproducible."""
    from peft import LoraConfig

    pipeline = load_pipeline(settings.model, device=device, dtype=torch.float32)
    resolution = settings.resolution or native_resolution(pipeline)
    tokens = token_rule(pipeline.tokenizer)
    random = torch.Generator().manual_seed(seed)
    instance_ids = _token_ids(pipeline, [
        prompt_text(settings.template_for(name), name, tokens[index]) for index, name in enumerate(class_names)
    ])
    instance_latents = _encode(pipeline, images, resolution, device, random)
    instance_labels = torch.from_numpy(np.array(labels, dtype=np.int64))
    prior = None
    if settings.fine_tune == "dreambooth":
        prior = _prior_examples(settings, pipeline, sorted({int(label) for label in labels}), class_names, resolution, random)

    for module in (pipeline.unet, pipeline.vae, pipeline.text_encoder):
        module.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        # peft initialises LoRA's A matrices from torch's global RNG.
        torch.manual_seed(seed)
        pipeline.unet.add_adapter(_lora_config(LoraConfig, settings, UNET_TARGETS))
        if settings.train_text_encoder:
            pipeline.text_encoder.add_adapter(_lora_config(LoraConfig, settings, TEXT_ENCODER_TARGETS))
    trainable = [parameter for module in (pipeline.unet, pipeline.text_encoder) for parameter in module.parameters()
                 if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate)
    from diffusers import DDPMScheduler

    noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    pipeline.unet.train()
    pipeline.text_encoder.train(settings.train_text_encoder)
    losses: list[float] = []
    use_autocast = device.startswith("cuda")
    for step in range(settings.training_steps):
        chosen = torch.randint(0, len(instance_latents), (settings.train_batch_size,), generator=random)
        latents, ids = instance_latents[chosen], instance_ids[instance_labels[chosen]]
        if prior is not None:
            prior_chosen = torch.randint(0, len(prior[0]), (settings.train_batch_size,), generator=random)
            latents, ids = torch.cat([latents, prior[0][prior_chosen]]), torch.cat([ids, prior[1][prior_chosen]])
        noise = torch.randn(latents.shape, generator=random)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(latents),), generator=random)
        latents, ids, noise, timesteps = (tensor.to(device) for tensor in (latents, ids, noise, timesteps))
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        if noise_scheduler.config.prediction_type == "v_prediction":
            target = noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_autocast):
            with torch.set_grad_enabled(settings.train_text_encoder):
                text = pipeline.text_encoder(ids)[0]
            prediction = pipeline.unet(noisy, timesteps, text).sample.float()
        errors = ((prediction - target.float()) ** 2).mean(dim=(1, 2, 3))
        if prior is not None:
            instance_errors, prior_errors = errors.chunk(2)
            loss = instance_errors.mean() + settings.prior_loss_weight * prior_errors.mean()
        else:
            loss = errors.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, GRADIENT_CLIP_NORM)
        optimizer.step()
        losses.append(loss.item())
        check_finite_loss("generator 'stable_diffusion' fine-tune", step + 1, losses[-1], settings.learning_rate)
        if progress is not None:
            progress(step + 1, settings.training_steps)
    _save_adapter(pipeline, settings, destination)
    return FineTuneResult(tokens=tokens, losses=losses)


def _lora_config(config_class: Any, settings: StableDiffusionSettings, targets: list[str]) -> Any:
    return config_class(r=settings.lora_rank, lora_alpha=settings.lora_alpha, target_modules=targets)


def _token_ids(pipeline: Any, prompts: list[str]) -> torch.Tensor:
    tokenizer = pipeline.tokenizer
    return tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


@torch.no_grad()
def _encode(pipeline: Any, images: np.ndarray, resolution: int, device: str, random: torch.Generator) -> torch.Tensor:
    """Scaled VAE latents of the images (one sample of each posterior, drawn from `random`), on CPU."""
    latents = []
    for start in range(0, len(images), ENCODE_BATCH):
        pixels = to_model_images(images[start : start + ENCODE_BATCH], resolution, device, torch.float32) * 2.0 - 1.0
        posterior = pipeline.vae.encode(pixels).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=random).to(device)
        latents.append((posterior.mean + posterior.std * noise).cpu())
    return torch.cat(latents) * pipeline.vae.config.scaling_factor


@torch.no_grad()
def _prior_examples(
    settings: StableDiffusionSettings,
    pipeline: Any,
    classes: list[int],
    class_names: Sequence[str],
    resolution: int,
    random: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DreamBooth's class images: `num_class_images` latents per fitted class that the base model makes from the
    class prompt without its token (txt2img with the model's own scheduler, `class_image_steps` steps, guidance
    7.5 as DreamBooth's script), with those prompts' token ids. Only fit settings shape them: sampling settings
    and `batch_size` change the generator's images, not its fit."""
    from diffusers import StableDiffusionPipeline

    sampler = StableDiffusionPipeline(**pipeline.components, requires_safety_checker=False)
    sampler.set_progress_bar_config(disable=True)
    prompts = [prompt_text(settings.template_for(class_names[index]), class_names[index], "") for index in classes]
    prompt_ids = _token_ids(pipeline, prompts)
    latents, ids = [], []
    for position, _ in enumerate(classes):
        for start in range(0, settings.num_class_images, PRIOR_BATCH):
            count = min(PRIOR_BATCH, settings.num_class_images - start)
            seeds = torch.randint(0, 2**31 - 1, (count,), generator=random).tolist()
            made = sampler(
                [prompts[position]] * count, height=resolution, width=resolution,
                num_inference_steps=settings.class_image_steps, guidance_scale=PRIOR_GUIDANCE_SCALE,
                generator=[torch.Generator().manual_seed(seed) for seed in seeds], output_type="latent",
            ).images
            latents.append(made.float().cpu())
            ids.append(prompt_ids[position].repeat(count, 1))
    return torch.cat(latents), torch.cat(ids)


def _save_adapter(pipeline: Any, settings: StableDiffusionSettings, destination: Path) -> None:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers: dict[str, Any] = {
        "unet_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(pipeline.unet)),
        # The adapter's config (rank, alpha, targets) travels in the file, so a load scales it as the fit did.
        "unet_lora_adapter_metadata": pipeline.unet.peft_config["default"].to_dict(),
    }
    if settings.train_text_encoder:
        layers["text_encoder_lora_layers"] = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipeline.text_encoder))
        layers["text_encoder_lora_adapter_metadata"] = pipeline.text_encoder.peft_config["default"].to_dict()
    StableDiffusionPipeline.save_lora_weights(destination, safe_serialization=True, **layers)
