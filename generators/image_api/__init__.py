"""Image APIs as generators: `settings` holds what every API generator shares (spend cap, concurrency), `images`
decodes and checks what an API returns, `openai_images` the OpenAI-compatible images generator."""

from generators.image_api.openai_images import OpenAIImagesGenerator, OpenAIImagesSettings
from generators.image_api.settings import ImageApiSettings

__all__ = ["ImageApiSettings", "OpenAIImagesGenerator", "OpenAIImagesSettings"]
