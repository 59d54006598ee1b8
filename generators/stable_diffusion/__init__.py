"""The `stable_diffusion` generator: a local Stable Diffusion pipeline fine-tuned (LoRA via peft, or DreamBooth-style
prompts) on the fit subset. `settings` is its settings model, `model` loads and checks the local pipeline,
`fine_tune` the training loop, `generator` the Generator, `tiny` the random-weight pipeline for trying the path."""

from generators.stable_diffusion.generator import ADAPTER_FILE, StableDiffusionGenerator
from generators.stable_diffusion.settings import StableDiffusionSettings

__all__ = ["ADAPTER_FILE", "StableDiffusionGenerator", "StableDiffusionSettings"]
