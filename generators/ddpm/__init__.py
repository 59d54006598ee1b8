"""The `ddpm` generator: a class-conditional DDPM (diffusers' UNet2DModel and DDPMScheduler) trained from scratch on
the fit subset. `settings` is its pydantic settings model, `generator` the Generator."""

from generators.ddpm.generator import DDPMGenerator
from generators.ddpm.settings import DDPMSettings

__all__ = ["DDPMGenerator", "DDPMSettings"]
