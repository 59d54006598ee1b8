"""The settings of the `ddpm` generator: what shapes and trains its UNet, and how it samples."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from spaces import GeneratorSettings, setting

# GroupNorm needs each width divisible by its group count; 8 keeps tiny test models possible, and wider models
# get up to the usual 32 groups (see ddpm._norm_groups).
WIDTH_MULTIPLE = 8
Width = Annotated[int, Field(ge=8, le=1024, multiple_of=WIDTH_MULTIPLE)]


class DDPMSettings(GeneratorSettings):
    """The defaults fit a 2-core CPU in about 3.5 minutes for 32 px grayscale (841 phantom images: 204 s, then 0.16 s
    per sampled image; bench/generator_fidelity.py). On a GPU, wider models ([64, 128, 256]) and more steps pay off."""

    needs_fit: ClassVar[bool] = True
    fit_summary: ClassVar[tuple[str, ...]] = ("block_out_channels", "training_steps")
    """What `python -m search.pool list` always shows of a fit (besides the fit settings off their defaults)."""

    block_out_channels: tuple[Width, ...] = setting(
        (16, 32, 64), affects="fit", min_length=1,
        description="UNet widths, one per resolution level (each level after the first halves the image, so "
        "image_size must be divisible by 2**(levels - 1)); multiples of 8 for GroupNorm",
    )
    layers_per_block: int = setting(1, affects="fit", ge=1, le=4, description="ResNet layers per UNet level")
    training_steps: int = setting(1500, affects="fit", ge=1, le=1_000_000, description="optimisation steps")
    learning_rate: float = setting(1e-3, affects="fit", ge=1e-7, le=1e-1, description="AdamW learning rate")
    batch_size: int = setting(16, affects="fit", ge=1, le=4096, description="training images per step")
    num_train_timesteps: int = setting(
        1000, affects="fit", ge=10, le=10_000, description="diffusion steps of the DDPM noise schedule (Lan 2024 used 4000)"
    )
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = setting(
        "squaredcos_cap_v2", affects="fit",
        description="noise schedule: squaredcos_cap_v2 is the cosine schedule (Nichol & Dhariwal 2021), which keeps "
        "small images recognisable for more of the diffusion; linear is Ho et al.'s (and Lan's)",
    )
    prediction_type: Literal["epsilon", "v_prediction"] = setting(
        "v_prediction", affects="fit",
        description="what the UNet predicts: v (Salimans & Ho 2022) stays well conditioned at high noise, where an "
        "epsilon model's small errors shift the brightness of whole images",
    )
    class_dropout: float = setting(
        0.1, affects="fit", ge=0.0, le=0.5,
        description="chance a training label is replaced by the null class, which teaches the unconditional model "
        "that classifier-free guidance needs",
    )
    ema_decay: float = setting(
        0.999, affects="fit", ge=0.0, le=0.9999,
        description="largest decay of the moving average of the weights that sampling uses; it warms up as "
        "1 - (1 + step)**(-2/3), so a short fit averages its last ~10% of steps; 0 samples the final weights",
    )
    sampling_steps: int = setting(25, ge=1, le=1000, description="DDIM steps per image (at most num_train_timesteps)")
    guidance_scale: float = setting(
        2.0,
        ge=0.0,
        le=20.0,
        description="classifier-free guidance: 0 unconditional, 1 conditional, above 1 stronger class features",
    )
    sampling_batch_size: int = setting(
        64, affects="nothing", ge=1, le=4096,
        description="images per UNet call when sampling; every call is padded to this size (see DDPMGenerator)",
    )

    @model_validator(mode="after")
    def _sampling_within_the_schedule(self) -> DDPMSettings:
        if self.sampling_steps > self.num_train_timesteps:
            raise ValueError(
                f"sampling_steps = {self.sampling_steps} is more than num_train_timesteps = {self.num_train_timesteps}; "
                "allowed: at most num_train_timesteps"
            )
        return self
