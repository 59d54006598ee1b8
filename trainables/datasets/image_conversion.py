"""Decoding image files and bytes with Pillow into uint8 [C, H, W] arrays, and the one-time
resize (bilinear, antialiased) and grayscale/RGB conversion every source applies at load time."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS

from trainables.datasets.image_set import DatasetError

IMAGE_SUFFIXES: tuple[str, ...] = IMG_EXTENSIONS

# Modes Pillow decodes single-channel images into; anything else (RGB, RGBA, P, CMYK, YCbCr)
# is treated as colour.
_GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})

ImageSource = Path | bytes


def _open(source: ImageSource, name: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot read image '{name}': {error}") from error


def source_channels(source: ImageSource, name: str) -> int:
    """1 or 3, from the image header only (the pixels are not decoded)."""
    with _open(source, name) as image:
        return 1 if image.mode in _GRAYSCALE_MODES else 3


def _to_eight_bit(image: Image.Image) -> Image.Image:
    # Pillow's own conversion from 16-bit or float clips at 255 instead of scaling, which would
    # turn most 16-bit medical images white.
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode in _SIXTEEN_BIT_MODES:
        pixels = pixels * (255.0 / 65535.0)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _convert_and_resize(image: Image.Image, channels: int, image_size: int | None) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        image = _to_eight_bit(image)
    image = image.convert("L" if channels == 1 else "RGB")
    if image_size is not None and image.size != (image_size, image_size):
        # Pillow's bilinear filter widens its support when shrinking, so downsizing is antialiased.
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[np.newaxis] if channels == 1 else pixels.transpose(2, 0, 1)


def decode_image(source: ImageSource, name: str, channels: int, image_size: int | None) -> np.ndarray:
    """Decode one image file or encoded bytes into uint8 [channels, H, W]; errors name `name`."""
    with _open(source, name) as image:
        try:
            image.load()
            return _convert_and_resize(image, channels, image_size)
        except (OSError, ValueError, SyntaxError) as error:
            raise DatasetError(f"cannot read image '{name}': {error}") from error


def convert_pixels(pixels: np.ndarray, channels: int, image_size: int | None) -> np.ndarray:
    """An image already decoded (uint8 [H, W] or [H, W, 3]: a DICOM file's, a NIfTI slice) as uint8 [channels, H, W],
    resized and converted as every other image is."""
    return _convert_and_resize(Image.fromarray(np.ascontiguousarray(pixels)), channels, image_size)


def check_one_size(pixels: np.ndarray, name: str, first_pixels: np.ndarray, first_name: str) -> None:
    height, width = pixels.shape[1:]
    if height != width:
        raise DatasetError(
            f"image '{name}' is {width}x{height} px (not square); pass image_size to resize every image "
            f"to image_size x image_size"
        )
    if pixels.shape != first_pixels.shape:
        raise DatasetError(
            f"image '{name}' is {width}x{height} px but '{first_name}' is "
            f"{first_pixels.shape[2]}x{first_pixels.shape[1]} px; images must share one size unless "
            f"image_size is given"
        )


def decode_images(
    sources: Sequence[ImageSource], names: Sequence[str], channels: int | None, image_size: int | None
) -> tuple[np.ndarray, int]:
    """Decode all images into one new uint8 [N, C, H, W] array and return it with C.

    channels=None keeps the source's: 1 if every image is grayscale, else 3 (mixed folders become
    RGB). image_size=None keeps the source size, which must then be square and shared."""
    if channels is None:
        channels = max((source_channels(source, name) for source, name in zip(sources, names)), default=1)
    decoded: list[np.ndarray] = []
    for source, name in zip(sources, names):
        pixels = decode_image(source, name, channels, image_size)
        if image_size is None:
            check_one_size(pixels, name, decoded[0] if decoded else pixels, names[0])
        decoded.append(pixels)
    if not decoded:
        size = image_size or 1
        return np.zeros((0, channels, size, size), dtype=np.uint8), channels
    return np.stack(decoded), channels


def convert_image_array(images: np.ndarray, image_size: int | None, channels: int | None, source_name: str) -> np.ndarray:
    """Resize and convert uint8 [N, C, H, W] images that are already in memory (npz sources)."""
    source_channel_count, height, width = images.shape[1:]
    target_channels = channels or source_channel_count
    if image_size is None and height != width:
        raise DatasetError(f"images in '{source_name}' are {width}x{height} px (not square); pass image_size to resize them")
    size = image_size or height
    if size == height == width:
        if target_channels == source_channel_count:
            return np.ascontiguousarray(images)
        if source_channel_count == 1:
            return np.repeat(images, 3, axis=1)
    converted = np.empty((len(images), target_channels, size, size), dtype=np.uint8)
    for index, pixels in enumerate(images):
        layout = pixels[0] if source_channel_count == 1 else pixels.transpose(1, 2, 0)
        image = Image.fromarray(np.ascontiguousarray(layout))
        converted[index] = _convert_and_resize(image, target_channels, size)
    return converted
