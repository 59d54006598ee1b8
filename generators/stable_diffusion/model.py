"""Loading a pretrained Stable Diffusion for the `stable_diffusion` generator, without ever waiting on a network that
is not there, and what its pipelines need around them: schedulers by name, prompts per class, the rare tokens that
name classes in a fine-tune, and conversion between the dataset's images and the model's."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from generators.errors import GeneratorError

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

MODEL_INDEX = "model_index.json"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# A hub check before Ray starts is one small request; it must answer quickly or say why not.
HUB_CHECK_TIMEOUT_S = 10.0
# DreamBooth (Ruiz et al. 2023) takes rare tokens from the middle of the vocabulary: frequent enough to be real
# tokens, rare enough to carry little meaning. For CLIP's 49408-token BPE vocabulary that is ids 5000-10000.
RARE_TOKEN_IDS = range(5000, 10000)
RARE_TOKEN_MAX_LENGTH = 3
# ITU-R BT.601 luma, as PIL's convert("L").
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ModelLocation:
    """Where from_pretrained finds a model: `path` (a folder or hub id) and whether only local files may be read."""

    path: str
    local_files_only: bool


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def locate_model(model: str, *, check_hub: bool = False) -> ModelLocation:
    """A local folder (it must hold model_index.json), or a hub id found in the local Hugging Face cache, or (when
    the hub may be used) a hub id to download; anything else is a GeneratorError that says what to do."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / MODEL_INDEX).is_file():
            raise GeneratorError(
                f"generator 'stable_diffusion' setting 'model' = {model!r} is a folder without {MODEL_INDEX}; allowed: "
                "a folder written by a diffusers pipeline's save_pretrained, or a hub id such as "
                "'stabilityai/stable-diffusion-2-1-base'"
            )
        return ModelLocation(str(folder.resolve()), True)
    if not HUB_ID.match(model) or model.startswith((".", "/", "~")):
        raise GeneratorError(
            f"generator 'stable_diffusion' setting 'model' = {model!r}: no such folder, and not a hub id (owner/name); "
            "allowed: a folder written by save_pretrained (try `python -m generators.tiny_stable_diffusion DEST` for "
            "a tiny one) or a hub id such as 'stabilityai/stable-diffusion-2-1-base'"
        )
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, MODEL_INDEX), str):
        return ModelLocation(model, True)
    how = (
        f"download it first where the hub is reachable (`hf download {model}`, then copy the Hugging Face cache or "
        "the folder here), or give a local folder in save_pretrained layout"
    )
    if _hub_offline():
        raise GeneratorError(
            f"generator 'stable_diffusion' model {model!r} is a hub id that is not in the local Hugging Face cache and "
            f"HF_HUB_OFFLINE is set; {how}"
        )
    if check_hub:
        from huggingface_hub import model_info

        try:
            model_info(model, timeout=HUB_CHECK_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - network, auth and not-found errors all mean the same here
            raise GeneratorError(
                f"generator 'stable_diffusion' model {model!r} is a hub id that is not in the local Hugging Face cache "
                f"and the hub did not answer for it ({type(error).__name__}: {error}); {how}"
            ) from None
    return ModelLocation(model, False)


def load_pipeline(model: str, *, device: str, dtype: torch.dtype) -> StableDiffusionPipeline:
    """The text-to-image pipeline of `model` on `device` in `dtype` (its safety checker off: medical images)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    location = locate_model(model)
    # Loading bars, per component, would flood a sweep's log; the fit has a bar of its own.
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        pipeline = StableDiffusionPipeline.from_pretrained(
            location.path, dtype=dtype, safety_checker=None, requires_safety_checker=False,
            local_files_only=location.local_files_only,
        )
    except (OSError, ValueError) as error:
        raise GeneratorError(f"generator 'stable_diffusion' cannot load model {model!r}: {error}") from error
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


def with_scheduler(pipeline: StableDiffusionPipeline, name: str) -> StableDiffusionPipeline:
    """The pipeline with the named sampling scheduler, configured from the model's own ('default' keeps it)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, PNDMScheduler

    schedulers = {
        "ddim": DDIMScheduler, "dpm_solver": DPMSolverMultistepScheduler, "euler": EulerDiscreteScheduler,
        "pndm": PNDMScheduler,
    }
    if name != "default":
        pipeline.scheduler = schedulers[name].from_config(pipeline.scheduler.config)
    return pipeline


def native_resolution(pipeline: StableDiffusionPipeline) -> int:
    return int(pipeline.unet.config.sample_size) * int(pipeline.vae_scale_factor)


def class_text(class_name: str) -> str:
    return class_name.replace("_", " ")


def prompt_text(template: str, class_name: str, token: str) -> str:
    """The template with {class} and {token} filled in, spaces collapsed (an empty token leaves none behind)."""
    return " ".join(template.format(**{"class": class_text(class_name), "token": token}).split())


def rare_tokens(tokenizer: Any, count: int, avoid: Iterable[str]) -> list[str]:
    """`count` distinct rare words, each one token of `tokenizer` and none a word of `avoid` (the prompts).

    DreamBooth's scheme: whole-word tokens of up to three letters from the middle of the vocabulary (ids 5000-10000
    for CLIP), which the text encoder already embeds but which mean little, so the fine-tune gives them the class's
    look without training embeddings. A vocabulary too small for that window (the tiny test model's) gives its
    highest-id candidates."""
    avoided = {word.lower() for text in avoid for word in re.findall(r"[a-z]+", text.lower())}
    candidates = []
    for token, token_id in tokenizer.get_vocab().items():
        word = token[: -len("</w>")] if token.endswith("</w>") else ""
        if word.isascii() and word.isalpha() and word.islower() and len(word) <= RARE_TOKEN_MAX_LENGTH and word not in avoided:
            candidates.append((token_id, word))
    in_window = sorted(candidate for candidate in candidates if candidate[0] in RARE_TOKEN_IDS)
    ordered = in_window if len(in_window) >= count else sorted(candidates, reverse=True)
    # A word is usable when the tokenizer gives it back as that one token (not split, not normalised away).
    usable = (word for token_id, word in ordered if tokenizer(word, add_special_tokens=False).input_ids == [token_id])
    chosen = list(itertools.islice(usable, count))
    if len(chosen) < count:
        raise GeneratorError(f"the model's tokenizer has only {len(chosen)} rare one-token words, {count} classes need one each")
    return chosen


def to_model_images(sources: np.ndarray, resolution: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [N, C, H, W] dataset images as float [N, 3, resolution, resolution] in [0, 1] (gray repeated)."""
    images = torch.from_numpy(np.asarray(sources, dtype=np.float32) / 255.0)
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    if images.shape[-1] != resolution or images.shape[-2] != resolution:
        images = torch.nn.functional.interpolate(images, size=(resolution, resolution), mode="bicubic", align_corners=False)
    return images.clamp(0.0, 1.0).to(device=device, dtype=dtype)


def to_dataset_images(images: torch.Tensor, channels: int, image_size: int) -> np.ndarray:
    """float [N, 3, H, W] in [0, 1] as uint8 [N, channels, image_size, image_size] (luma for one channel)."""
    images = images.float().cpu()
    if images.shape[-1] != image_size or images.shape[-2] != image_size:
        antialias = images.shape[-1] > image_size
        images = torch.nn.functional.interpolate(
            images, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=antialias
        )
    if channels == 1:
        images = (images * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return (images.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()


def inference_dtype(device: str) -> torch.dtype:
    """float16 on CUDA (half the memory, tensor cores), float32 on CPU (where half precision is slow or missing)."""
    return torch.float16 if device.startswith("cuda") else torch.float32


def text_encoder_lora_problem() -> str | None:
    """Why a LoRA on the text encoder cannot be trained and loaded here, or None: transformers puts adapters on
    its models through peft and needs a recent enough peft to do so."""
    from importlib.metadata import version

    from packaging.version import Version

    try:
        from transformers.integrations.peft import MIN_PEFT_VERSION
    except ImportError:
        return None
    installed = version("peft")
    if Version(installed) < Version(MIN_PEFT_VERSION):
        return (
            f"transformers {version('transformers')} needs peft >= {MIN_PEFT_VERSION} for text-encoder adapters; "
            f"peft {installed} is installed"
        )
    return None


def check_class_names(prompts: Sequence[str], class_names: Sequence[str]) -> None:
    """Refuses a per-class prompt for a class the dataset does not have."""
    unknown = [name for name in prompts if name not in class_names]
    if unknown:
        raise GeneratorError(
            f"generator 'stable_diffusion' setting 'prompts' names unknown class(es) {unknown}; allowed: "
            f"{', '.join(class_names)}"
        )

