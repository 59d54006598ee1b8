"""The settings of the `stable_diffusion` generator: which pretrained model, how it samples (txt2img or img2img), and
how it is fine-tuned on the real subset (none, LoRA, DreamBooth with prior preservation), through peft."""

from __future__ import annotations

import string
from typing import ClassVar, Literal

from pydantic import model_validator

from spaces import GeneratorSettings, setting

PROMPT_FIELDS = ("class", "token")
"""The placeholders a prompt template may use: {class} (the class name) and {token} (the class's rare token once
fine-tuned, empty otherwise)."""

SchedulerName = Literal["default", "ddim", "dpm_solver", "euler", "pndm"]


def check_prompt_template(template: str, where: str) -> None:
    """Refuses a template with a placeholder other than {class} and {token}, or broken braces."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise ValueError(f"{where} {template!r} is not a valid template ({error}); write literal braces as {{{{ }}}}") from None
    unknown = sorted(fields - set(PROMPT_FIELDS))
    if unknown:
        raise ValueError(f"{where} {template!r} uses unknown placeholder(s) {unknown}; allowed: {{class}}, {{token}}")


class StableDiffusionSettings(GeneratorSettings):
    """Defaults: Stable Diffusion 2.1 base (512 px), img2img at strength 0.5 from the trial's own real images
    (DA-Fusion, Trabucco et al. 2024), no fine-tune. A GPU is expected for real models; on a CPU use the tiny model
    of `python -m generators.tiny_stable_diffusion DEST` to try the path."""

    fit_summary: ClassVar[tuple[str, ...]] = ("model", "fine_tune", "lora_rank", "training_steps")
    """What `python -m search.pool list` always shows of a fit (besides the fit settings off their defaults)."""

    model: str = setting(
        "stabilityai/stable-diffusion-2-1-base", affects="fit",
        description="a Hugging Face hub id (in the local cache, or downloaded when the hub is reachable) or a local "
        "folder in diffusers save_pretrained layout (holding model_index.json)",
    )
    mode: Literal["txt2img", "img2img"] = setting(
        "img2img", description="txt2img: images from noise and a prompt; img2img: variations of the trial's real images"
    )
    prompt: str = setting(
        "a medical image of {token} {class}", affects="fit",
        description="prompt template; {class} is the class name (underscores as spaces), {token} the class's rare "
        "token when fine-tuned (empty otherwise); also the fine-tune's instance prompt",
    )
    prompts: dict[str, str] = setting(
        {}, affects="fit", description="per-class templates by class name (prompts.<class>), overriding `prompt`"
    )
    negative_prompt: str = setting("", description="what guidance steers away from (empty: unconditional)")
    strength: float = setting(
        0.5, gt=0.0, le=1.0,
        description="img2img: how much of the diffusion is redone (0: the source image, 1: nearly a new image)",
    )
    guidance_scale: float = setting(7.5, ge=0.0, le=30.0, description="classifier-free guidance (1 or less: none)")
    sampling_steps: int = setting(30, ge=1, le=1000, description="scheduler steps (img2img runs strength x this many)")
    scheduler: SchedulerName = setting(
        "dpm_solver", description="sampling scheduler; default: the one saved with the model"
    )
    resolution: int | None = setting(
        None, affects="fit", ge=8, le=2048, multiple_of=8,
        description="pixels of the square images the model makes and is fine-tuned at (None: the model's native "
        "size); outputs are resized to the dataset's image size",
    )
    batch_size: int = setting(
        4, affects="nothing", ge=1, le=256,
        description="images per pipeline call; every call is padded to this size, so images do not depend on it",
    )
    fine_tune: Literal["none", "lora", "dreambooth"] = setting(
        "none", affects="fit",
        description="none: the pretrained model; lora: a LoRA adapter on the UNet attention, one rare token per "
        "class; dreambooth: the same with prior preservation on images the base model makes of each class",
    )
    lora_rank: int = setting(8, affects="fit", ge=1, le=256, description="LoRA rank (Lan 2024: 8)")
    lora_alpha: float = setting(8.0, affects="fit", gt=0.0, le=1024.0, description="LoRA scale numerator (scale alpha/rank)")
    learning_rate: float = setting(1e-4, affects="fit", ge=1e-8, le=1e-1, description="AdamW learning rate (Kakkar: 5e-6)")
    training_steps: int = setting(500, affects="fit", ge=1, le=100_000, description="fine-tune steps (Kakkar: 5000)")
    train_batch_size: int = setting(1, affects="fit", ge=1, le=256, description="real images per fine-tune step")
    train_text_encoder: bool = setting(
        False, affects="fit", description="also put LoRA on the text encoder's attention (DreamBooth's option)"
    )
    prior_loss_weight: float = setting(1.0, affects="fit", ge=0.0, le=100.0, description="dreambooth: weight of the prior loss")
    num_class_images: int = setting(
        50, affects="fit", ge=1, le=10_000,
        description="dreambooth: images per class the base model makes (txt2img) for prior preservation",
    )
    class_image_steps: int = setting(
        25, affects="fit", ge=1, le=1000, description="dreambooth: scheduler steps of each class image"
    )

    @property
    def image_to_image(self) -> bool:  # type: ignore[override]
        return self.mode == "img2img"

    @property
    def needs_fit(self) -> bool:  # type: ignore[override]
        return self.fine_tune != "none"

    def template_for(self, class_name: str) -> str:
        return self.prompts.get(class_name, self.prompt)

    @model_validator(mode="after")
    def _diffusers_can_run_it(self) -> StableDiffusionSettings:
        if self.mode == "img2img" and int(self.strength * self.sampling_steps) < 1:
            # diffusers' img2img runs int(strength x steps) steps and fails inside on zero.
            raise ValueError(
                f"img2img runs int(strength x sampling_steps) = int({self.strength} x {self.sampling_steps}) = 0 "
                "denoising steps; allowed: strength x sampling_steps >= 1 (raise either)"
            )
        check_prompt_template(self.prompt, "prompt")
        for class_name, template in self.prompts.items():
            check_prompt_template(template, f"prompts.{class_name}")
        return self
