"""What every generator that sends real images to a paid image API declares, so the driver and the pool can ask
for consent, bound the spend and pace the requests without knowing the generator."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from spaces import GeneratorSettings


class ImageApiSettings(GeneratorSettings):
    """Base of the settings of a generator that uploads source images to a (paid) image API. The pool reserves
    `price_per_image_usd x images` against the sweep's spend cap before it asks for images, and asks in calls of
    `images_per_call` images of one source, `concurrent_calls` at a time per generator actor; the driver asks for
    consent (naming `upload_host`) and checks `api_key_variable` is set before Ray starts."""

    image_to_image: ClassVar[bool] = True
    api_key_variable: ClassVar[str] = ""
    """The environment variable the API client reads its key from; the key is never a setting."""

    @property
    @abstractmethod
    def price_per_image(self) -> float:
        """USD per generated image."""

    @property
    @abstractmethod
    def images_per_call(self) -> int:
        """Images one API call returns for one source image."""

    @property
    @abstractmethod
    def concurrent_calls(self) -> int:
        """API calls one generator actor may have in flight at once."""

    @property
    @abstractmethod
    def upload_host(self) -> str:
        """The host source images are sent to."""
