"""The built-in `phantom` dataset: procedurally drawn brain-MRI-like axial slices whose ventricles
and sulci widen with an ordinal dementia grade, imbalanced like the Alzheimer MRI data."""

from __future__ import annotations

import numpy as np

from trainables.datasets.image_set import DatasetError, DatasetSplits, ImageSet
from trainables.datasets.load_options import LoadOptions
from trainables.datasets.sources import DATA_SOURCES
from trainables.datasets.splits import assemble_splits

PHANTOM_CLASS_NAMES: tuple[str, ...] = (
    "non_demented",
    "very_mild_demented",
    "mild_demented",
    "moderate_demented",
)
# Shares of the Kaggle/Hugging Face Alzheimer MRI data (3200 / 2240 / 896 / 64 images).
PHANTOM_CLASS_SHARES: tuple[float, ...] = (0.50, 0.35, 0.14, 0.01)
MINIMUM_PHANTOM_COUNT = 20
MINIMUM_PHANTOM_IMAGE_SIZE = 16
DEFAULT_PHANTOM_IMAGE_SIZE = 32

# Subjects drawn per vectorised batch, to bound memory at large image sizes.
_BATCH_SIZE = 256


def phantom_class_sizes(count: int) -> np.ndarray:
    """Images per class: the shares rounded half up, at least 2 per class (so that a stratified
    split can put one in train and one in val), and the largest class takes the rounding rest."""
    sizes = np.array([max(2, int(np.floor(share * count + 0.5))) for share in PHANTOM_CLASS_SHARES[1:]])
    return np.concatenate([[count - sizes.sum()], sizes]).astype(np.int64)


def _validate(count: int, image_size: int, seed: int) -> None:
    def is_integer(value: object) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not is_integer(count) or count < MINIMUM_PHANTOM_COUNT:
        raise DatasetError(f"phantom count must be an integer >= {MINIMUM_PHANTOM_COUNT}, got {count!r}")
    if not is_integer(image_size) or image_size < MINIMUM_PHANTOM_IMAGE_SIZE:
        raise DatasetError(
            f"phantom image_size must be an integer >= {MINIMUM_PHANTOM_IMAGE_SIZE}, got {image_size!r}"
        )
    if not is_integer(seed) or seed < 0:
        raise DatasetError(f"phantom seed must be a non-negative integer, got {seed!r}")


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-np.clip(values, -30.0, 30.0)))


def _draw_subjects(labels: np.ndarray, generator: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-subject pose, anatomy and acquisition parameters, each an array [N] (or [N, k])."""
    count = len(labels)
    # Atrophy follows the grade but varies between subjects by about half a grade, so neighbouring
    # grades overlap and no single measurement separates them.
    atrophy = np.clip(labels + generator.normal(0.0, 0.5, count), -0.5, None)
    return {
        "angle": generator.uniform(-0.3, 0.3, count),
        "shift_x": generator.uniform(-0.07, 0.07, count),
        "shift_y": generator.uniform(-0.07, 0.07, count),
        "scale": generator.uniform(0.82, 1.0, count),
        "aspect": generator.uniform(0.76, 0.86, count),
        "brain_radius": 0.87 - 0.018 * atrophy + generator.normal(0.0, 0.01, count),
        "ventricle_scale": np.exp(generator.normal(0.0, 0.15, count)) * (1.0 + 0.25 * atrophy),
        "ventricle_spread": generator.uniform(0.09, 0.13, count),
        "ventricle_tilt": generator.uniform(0.2, 0.45, count),
        "sulcus_count": generator.integers(9, 14, count).astype(np.float64),
        "sulcus_phase": generator.uniform(0.0, 2 * np.pi, count),
        "sulcus_wobble": generator.uniform(0.4, 1.0, (count, 3)),
        "wobble_phase": generator.uniform(0.0, 2 * np.pi, (count, 4)),
        "cortex_ripple": generator.uniform(0.005, 0.015, count),
        "sulcus_width": np.clip(0.10 + 0.04 * atrophy + generator.normal(0.0, 0.03, count), 0.03, None),
        "sulcus_depth": np.clip(0.12 + 0.025 * atrophy + generator.normal(0.0, 0.02, count), 0.05, None),
        "sulcus_meander": generator.uniform(0.6, 1.0, count),
        "fold_frequency": generator.uniform(-7.0, 7.0, (count, 2, 4)),
        "fold_phase": generator.uniform(0.0, 2 * np.pi, (count, 4)),
        "cortex_thickness": generator.uniform(0.08, 0.12, count),
        "fissure_width": np.clip(0.012 + 0.004 * atrophy, 0.008, None),
        "texture_frequency": generator.uniform(1.0, 4.0, (count, 2, 4)),
        "texture_phase": generator.uniform(0.0, 2 * np.pi, (count, 4)),
        "bias_field": generator.normal(0.0, 0.08, (count, 2)),
        "gain": generator.uniform(0.85, 1.15, count),
        "gamma": generator.uniform(0.8, 1.25, count),
        "noise": generator.uniform(0.015, 0.05, count),
    }


def _ellipse_inside(
    u: np.ndarray, v: np.ndarray, centre_u: np.ndarray, centre_v: np.ndarray,
    half_width: np.ndarray, half_height: np.ndarray, tilt: np.ndarray, softness: float,
) -> np.ndarray:
    cos_tilt, sin_tilt = np.cos(tilt), np.sin(tilt)
    along = (u - centre_u) * cos_tilt + (v - centre_v) * sin_tilt
    across = -(u - centre_u) * sin_tilt + (v - centre_v) * cos_tilt
    radius = np.sqrt((along / half_width) ** 2 + (across / half_height) ** 2)
    return _sigmoid((1.0 - radius) / softness)


def _random_waves(u: np.ndarray, v: np.ndarray, frequencies: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """A smooth random field with about unit spread: a sum of plane waves per subject.
    frequencies: [N, 2, waves] (cycles per half image along u and v); phases: [N, waves]."""
    field = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
    for wave in range(phases.shape[1]):
        field += np.sin(
            np.pi * (frequencies[:, 0, wave, None, None] * u + frequencies[:, 1, wave, None, None] * v)
            + phases[:, wave, None, None]
        )
    return field * np.float32(np.sqrt(2.0 / phases.shape[1]))


def _render(subjects: dict[str, np.ndarray], image_size: int, generator: np.random.Generator) -> np.ndarray:
    """Draw the subjects' slices as float images in [0, 1], shaped [N, H, W]."""
    # float32 halves the time and memory; 8-bit output does not need more precision.
    subjects = {name: values.astype(np.float32) for name, values in subjects.items()}

    def column(name: str) -> np.ndarray:
        return subjects[name][:, None, None]

    centres = ((np.arange(image_size, dtype=np.float32) + 0.5) / image_size * 2.0 - 1.0).astype(np.float32)
    x, y = centres[None, None, :], centres[None, :, None]
    angle, scale = column("angle"), column("scale")
    dx, dy = x - column("shift_x"), y - column("shift_y")
    # Subject coordinates: undo the pose so the anatomy is drawn upright and centred.
    u = (np.cos(angle) * dx + np.sin(angle) * dy) / scale
    v = (-np.sin(angle) * dx + np.cos(angle) * dy) / scale
    # Edges about one pixel wide, so small images are not aliased.
    softness = 1.2 / image_size
    head_radius = np.sqrt((u / (0.93 * column("aspect"))) ** 2 + (v / 0.93) ** 2)

    skull = _sigmoid((1.0 - head_radius) / softness) * _sigmoid((head_radius - 0.91) / softness)
    polar = np.arctan2(v, u / column("aspect"))
    wobble_amplitude, wobble_phase = subjects["sulcus_wobble"], subjects["wobble_phase"]
    # Irregular angular spacing: the sulci follow a warped angle instead of a clock face.
    warped_polar = polar + sum(
        wobble_amplitude[:, harmonic, None, None] / (harmonic + 2)
        * np.sin((2 * harmonic + 3) * polar + wobble_phase[:, harmonic, None, None])
        for harmonic in range(3)
    )
    brain_radius = column("brain_radius") + column("cortex_ripple") * np.sin(9.0 * warped_polar)
    brain = _sigmoid((brain_radius - head_radius) / softness)

    texture = _random_waves(u, v, subjects["texture_frequency"], subjects["texture_phase"])
    cortex = _sigmoid((head_radius - (brain_radius - column("cortex_thickness"))) / (2 * softness))
    white_matter = _sigmoid((0.62 * brain_radius - head_radius) / 0.08)
    tissue = 0.48 + 0.13 * (1.0 - cortex) + 0.06 * white_matter + 0.025 * texture

    # Sulci are the meandering zero lines of a mostly angular wave plus a random field, so they
    # run roughly perpendicular to the surface but bend, fork and end at uneven depths.
    meander = _random_waves(u, v, subjects["fold_frequency"], subjects["fold_phase"])
    fold_field = np.cos(column("sulcus_count") * warped_polar + column("sulcus_phase")) + column("sulcus_meander") * meander
    depth = column("sulcus_depth") * (0.7 + 0.6 * np.sin(5.0 * warped_polar + wobble_phase[:, 3, None, None]) ** 2)
    sulci = _sigmoid((column("sulcus_width") - np.abs(fold_field)) / 0.06) * _sigmoid(
        (head_radius - (brain_radius - depth)) / (2 * softness)
    )
    fissure = _sigmoid((column("fissure_width") - np.abs(u)) / softness) * _sigmoid((np.abs(v) - 0.45) / 0.05)
    sulci = np.maximum(sulci, fissure)

    ventricle_scale, spread, tilt = column("ventricle_scale"), column("ventricle_spread"), column("ventricle_tilt")
    half_width, half_height = 0.055 * ventricle_scale, 0.2 * ventricle_scale
    ventricles = np.maximum(
        _ellipse_inside(u, v, -spread, -0.04, half_width, half_height, -tilt, 0.15),
        _ellipse_inside(u, v, spread, -0.04, half_width, half_height, tilt, 0.15),
    )

    image = 0.06 + 0.80 * skull + brain * (tissue * (1.0 - 0.8 * sulci) * (1.0 - 0.85 * ventricles) - 0.06)
    bias = subjects["bias_field"]
    image = image * (1.0 + bias[:, 0, None, None] * u + bias[:, 1, None, None] * v)
    image = column("gain") * np.clip(image, 0.0, 1.0) ** column("gamma")
    image = image + column("noise") * generator.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0.0, 1.0)


def make_phantom(count: int, image_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` phantom slices as uint8 [N, 1, image_size, image_size] and their grades int64 [N].

    Deterministic for (count, image_size, seed). Class sizes follow PHANTOM_CLASS_SHARES
    (see `phantom_class_sizes`); labels come in shuffled order. Each grade widens the ventricles,
    the sulci and the gap under the skull a little, less than subjects differ, so a small CNN
    reaches about 70% validation accuracy (majority class: 50%), not 100%."""
    _validate(count, image_size, seed)
    generator = np.random.default_rng(seed)
    labels = generator.permutation(np.repeat(np.arange(len(PHANTOM_CLASS_NAMES)), phantom_class_sizes(count)))
    subjects = _draw_subjects(labels, generator)
    images = np.empty((count, 1, image_size, image_size), dtype=np.uint8)
    for start in range(0, count, _BATCH_SIZE):
        batch = {name: values[start : start + _BATCH_SIZE] for name, values in subjects.items()}
        rendered = _render(batch, image_size, generator)
        images[start : start + _BATCH_SIZE, 0] = np.rint(rendered * 255.0).astype(np.uint8)
    return images, labels.astype(np.int64)


@DATA_SOURCES.register("phantom")
def load_phantom(location: str, options: LoadOptions) -> DatasetSplits:
    """`options.phantom_count` phantom slices split (stratified, seeded) into train / val / test.
    The phantom is built in, so it has no location; whatever is passed is ignored."""
    count = options.phantom_count
    images, labels = make_phantom(count, options.image_size or DEFAULT_PHANTOM_IMAGE_SIZE, options.seed)
    if options.channels == 3:
        images = np.repeat(images, 3, axis=1)
    ids = np.array([f"phantom/{index:06d}" for index in range(count)])
    return assemble_splits(
        options,
        name="phantom",
        class_names=PHANTOM_CLASS_NAMES,
        train=ImageSet(images=images, labels=labels, ids=ids),
        val=None,
        test_loader=None,
        ordinal_by_default=True,
    )
