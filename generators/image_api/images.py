"""Images to and from an image API: a source image as the square RGB PNG the API takes, and a returned base64
image as uint8 [C, H, W] of the dataset's size and channels; anything that is not a whole image is refused."""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from generators.errors import GeneratorError

# The variations endpoint's limit on an uploaded image; a 1024 px RGB PNG stays below it.
MAX_UPLOAD_BYTES = 4 * 2**20


def source_png(source: np.ndarray, size: int) -> bytes:
    """A uint8 [C, H, W] source (1 or 3 channels) as a `size` x `size` RGB PNG: the API wants a square image,
    and an upscaled small scan gives the model more than a thumbnail to vary."""
    pixels = np.ascontiguousarray(np.transpose(source, (1, 2, 0)))
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    # Fast compression: the upload is small either way (a 1024 px RGB image stays under the limit), and the
    # default level costs about four times the CPU, which many concurrent calls on a small machine feel.
    image.save(buffer, format="PNG", compress_level=1)
    data = buffer.getvalue()
    if len(data) > MAX_UPLOAD_BYTES:
        raise GeneratorError(f"a source image is {len(data)} bytes as a PNG, over the API's {MAX_UPLOAD_BYTES} byte limit")
    return data


def decoded_image(b64_json: object, *, channels: int, image_size: int) -> np.ndarray:
    """A returned base64 image as uint8 [channels, image_size, image_size]; GeneratorError if it is not one."""
    if not isinstance(b64_json, str) or not b64_json:
        raise GeneratorError(f"the response holds no b64_json image (got {type(b64_json).__name__})")
    try:
        data = base64.b64decode(b64_json, validate=True)
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = opened.convert("L" if channels == 1 else "RGB")
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as error:
        raise GeneratorError(f"the response's b64_json is not a readable image ({error})") from None
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else np.transpose(pixels, (2, 0, 1)).copy()
