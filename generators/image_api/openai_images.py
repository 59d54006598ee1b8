"""`openai_images`: synthetic images from an OpenAI-compatible image API, each a variation (DALL-E 2's
`/images/variations`) or an edit (`/images/edits`, a GPT Image model and a prompt) of one of the trial's own real
training images. The key is read from OPENAI_API_KEY by the client, never from a setting."""

from __future__ import annotations

import os
import string
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import model_validator

from generators.base import Generator
from generators.errors import GeneratorError
from generators.image_api.images import decoded_image, source_png
from generators.image_api.settings import ImageApiSettings
from spaces import GENERATORS, setting

if TYPE_CHECKING:
    import openai

OPENAI_BASE_URL = "https://api.openai.com/v1"
# USD per image of the models whose price is known, by (model, size). OpenAI retired dall-e-2 and its variations
# endpoint on 2026-05-12; servers that keep speaking the API may charge anything, so any other model needs
# price_per_image_usd (0 for a server of your own).
KNOWN_PRICES_USD: dict[tuple[str, int], float] = {("dall-e-2", 256): 0.016, ("dall-e-2", 512): 0.018, ("dall-e-2", 1024): 0.020}


class OpenAIImagesSettings(ImageApiSettings):
    """Which API, model and request make the images (hashed), and how they are fetched and priced (not hashed)."""

    api_key_variable: ClassVar[str] = "OPENAI_API_KEY"

    endpoint: Literal["variations", "edits"] = setting(
        "variations", description="variations (DALL-E 2, no prompt) or edits (a GPT Image model with a prompt)"
    )
    model: str = setting("dall-e-2", min_length=1, description="the model the server makes images with")
    size: Literal[256, 512, 1024] = setting(256, description="side of the square images the API makes, in pixels")
    prompt: str | None = setting(
        None, description="edits only: what to make of the source image; `{class}` is replaced by the class name"
    )
    base_url: str | None = setting(
        None, description=f"an OpenAI-compatible server's API root, e.g. http://127.0.0.1:8000/v1; default {OPENAI_BASE_URL}"
    )
    n: int = setting(1, affects="nothing", ge=1, le=10, description="images per API call from one source image")
    max_concurrent_requests: int = setting(
        4, affects="nothing", ge=1, le=64, description="API calls in flight at once per generator actor"
    )
    timeout_s: float = setting(120.0, affects="nothing", gt=0, le=600, description="seconds one attempt of a call may take")
    max_retries: int = setting(
        4, affects="nothing", ge=0, le=10,
        description="retries of a call answered 408, 409, 429 or 5xx (after Retry-After, else a backoff of 0.5 s "
        "doubling to 8 s) or cut off; a 400 is never retried",
    )
    price_per_image_usd: float = setting(
        None, affects="nothing", ge=0, le=10,
        description="USD per image, counted against --max-api-spend-usd; default: the known price of model x size",
    )

    @model_validator(mode="before")
    @classmethod
    def _known_price(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("price_per_image_usd") is None:
            model = values.get("model", "dall-e-2")
            size = values.get("size", 256)
            price = KNOWN_PRICES_USD.get((model, size))
            if price is None:
                known = ", ".join(f"{name} {side}" for name, side in KNOWN_PRICES_USD)
                raise ValueError(
                    f"the price of model {model!r} at size {size} is not known (known: {known}); set "
                    "synthetic.settings.price_per_image_usd (0 for a server of your own)"
                )
            values = {**values, "price_per_image_usd": price}
        return values

    @model_validator(mode="after")
    def _request_is_complete(self) -> OpenAIImagesSettings:
        if self.endpoint == "edits" and not self.prompt:
            raise ValueError("endpoint 'edits' needs a prompt, e.g. 'a brain MRI slice of class {class}'")
        if self.endpoint == "variations" and self.prompt is not None:
            raise ValueError("endpoint 'variations' takes no prompt; use endpoint 'edits' to give one")
        if self.prompt is not None:
            fields = {field for _, field, _, _ in string.Formatter().parse(self.prompt) if field is not None}
            if fields - {"class"}:
                raise ValueError(f"prompt placeholders other than {{class}} are not allowed, got {sorted(fields)}")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {self.base_url!r}")
        return self

    @property
    def price_per_image(self) -> float:
        return float(self.price_per_image_usd)

    @property
    def images_per_call(self) -> int:
        return self.n

    @property
    def concurrent_calls(self) -> int:
        return self.max_concurrent_requests

    @property
    def upload_host(self) -> str:
        return urlsplit(self.base_url or OPENAI_BASE_URL).netloc


@GENERATORS.register("openai_images", settings=OpenAIImagesSettings)
class OpenAIImagesGenerator(Generator):
    """Calls the API once per run of up to `n` positions that share a source image, `max_concurrent_requests` at
    a time. The API takes no seed, so images are not reproducible from their seed: the pool stores each image as
    it arrives and never asks for a slot again."""

    settings: OpenAIImagesSettings

    def __init__(self, settings: OpenAIImagesSettings, **shape: Any) -> None:
        super().__init__(settings, **shape)
        self._client: openai.OpenAI | None = None
        # A generator actor may run several generate calls at once in its threads (max_concurrency).
        self._client_lock = threading.Lock()

    def _openai(self) -> openai.OpenAI:
        with self._client_lock:
            return self._client or self._new_client()

    def _new_client(self) -> openai.OpenAI:
        import openai  # here, not at the top: every Ray worker imports the generators, few of them call an API

        if not os.environ.get(self.settings.api_key_variable):
            raise GeneratorError(
                f"{self.settings.api_key_variable} is not set where the openai_images generator runs; it must be "
                "in the environment of the Ray workers (a local sweep inherits the shell's)"
            )
        # The client reads the key from the environment itself; it never passes through this code.
        self._client = openai.OpenAI(
            base_url=self.settings.base_url or OPENAI_BASE_URL, timeout=self.settings.timeout_s,
            max_retries=self.settings.max_retries,
        )
        return self._client

    def generate(self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None = None) -> np.ndarray:
        assert sources is not None, "openai_images makes each image from a source image"
        images = np.empty((len(seeds), self.channels, self.image_size, self.image_size), dtype=np.uint8)
        calls = _calls(sources, self.settings.n)
        with ThreadPoolExecutor(max_workers=min(self.settings.max_concurrent_requests, max(1, len(calls)))) as pool:
            futures = {
                pool.submit(self._call, class_index, sources[positions[0]], len(positions)): positions for positions in calls
            }
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()  # calls not sent yet are not paid for images that would be thrown away
            for future in done:
                if future.exception() is not None:
                    raise future.exception()
            for future, positions in futures.items():
                images[positions] = future.result()
        return images

    def _call(self, class_index: int, source: np.ndarray, count: int) -> np.ndarray:
        """One API call for `count` images of one source; GeneratorError, never a partial answer, if it fails."""
        import openai

        settings = self.settings
        request: dict[str, Any] = {"image": ("source.png", source_png(source, settings.size), "image/png"),
                                   "model": settings.model, "n": count, "size": f"{settings.size}x{settings.size}"}
        if settings.model.startswith("dall-e"):
            request["response_format"] = "b64_json"  # GPT Image models always answer base64
        try:
            if settings.endpoint == "variations":
                with warnings.catch_warnings():
                    # The client marks the endpoint retired at OpenAI; servers that keep speaking the API still serve it.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    response = self._openai().images.create_variation(**request)
            else:
                prompt = settings.prompt.format(**{"class": self.class_names[class_index]})
                response = self._openai().images.edit(prompt=prompt, **request)
        except openai.BadRequestError as error:
            raise GeneratorError(
                f"the image API at {settings.upload_host} refused the source image: {_redacted(error)}"
            ) from None
        except openai.OpenAIError as error:
            raise GeneratorError(
                f"the image API at {settings.upload_host} failed ({settings.max_retries} retries allowed for 408, 409, 429, "
                f"5xx and dropped connections): {_redacted(error)}"
            ) from None
        except ValueError as error:  # a body that is not the JSON the client parses (JSONDecodeError and kin)
            raise GeneratorError(f"the image API at {settings.upload_host} answered malformed JSON: {_redacted(error)}") from None
        data = getattr(response, "data", None)
        if not isinstance(data, list) or len(data) != count:
            got = len(data) if isinstance(data, list) else type(data).__name__
            raise GeneratorError(f"the image API at {settings.upload_host} answered {got} images for a call of n = {count}")
        return np.stack([
            decoded_image(getattr(item, "b64_json", None), channels=self.channels, image_size=self.image_size)
            for item in data
        ])


def _calls(sources: np.ndarray, n: int) -> list[list[int]]:
    """Positions grouped into API calls: runs of up to n positions whose source images are the same."""
    by_source: dict[bytes, list[int]] = {}
    for position, source in enumerate(sources):
        by_source.setdefault(source.tobytes(), []).append(position)
    return [positions[start : start + n] for positions in by_source.values() for start in range(0, len(positions), n)]


def _redacted(error: Exception) -> str:
    """The error's message without the API key, should a server echo it."""
    message = str(error)
    key = os.environ.get(OpenAIImagesSettings.api_key_variable)
    return message.replace(key, "[API key]") if key else message
