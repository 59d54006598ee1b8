"""The ``medical`` policy: TorchIO's MRI artefact and intensity transforms on 2-D images, each with a searchable
probability and magnitude in the manner of ``custom``; the ``oversample`` generator can use them too.

Settings are flat keys, ``<operation>_probability`` and ``<operation>_magnitude`` (both in [0, 1]); every
probability defaults to 0, so ``medical`` with no settings changes nothing. ``blur`` and ``noise`` are TorchIO's
(a blur std drawn per axis, a noise std drawn per image), not ``custom``'s ``gaussian_blur`` and ``gaussian_noise``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torchvision.transforms import v2

from generators.augmentation.custom import DEFAULT_MAGNITUDE, Magnitude, Probability
from spaces import AUGMENTATION_POLICIES, AugmentationSettings, ComponentSettings

if TYPE_CHECKING:
    from torchio import Transform

# An image is laid out across this many mm along its shorter side (square pixels), so TorchIO's lengths in mm
# (blur std, elastic displacement, motion shift) read as percentages of the image's shorter side, whatever its
# size in pixels; measured on the shorter side, the elastic warp stays under the folding limit on both axes.
FIELD_OF_VIEW_MM = 100.0

# 7 control points with the outer two rings locked leave a 3 x 3 grid of moving points: one smooth warp
# across the image. The depth axis needs at least 5 for TorchIO (with locked borders) but never moves.
ELASTIC_CONTROL_POINTS = (7, 7, 5)

# Motion's shift grows with its rotation: 0.5% of the image per degree.
MOTION_SHIFT_PER_DEGREE = 0.5


@dataclass(frozen=True)
class MedicalOperation:
    """One operation of ``medical``: ``build(strength, **common)`` makes the TorchIO transform.

    The strength is magnitude * maximum; the transform draws its amount up to that strength on every
    application. ``common`` carries the probability (TorchIO's ``p``) and ``copy=False``.
    """

    maximum: float
    strength_meaning: str
    build: Callable[..., Transform]


# TorchIO is imported only when a medical transform is built: `import torchio` costs 0.4-0.6 s on top of
# torch and torchvision (measured with `python -X importtime`), which trials without `medical` need not pay.


def _elastic_deformation(percent: float, **common: Any) -> Transform:
    from torchio import RandomElasticDeformation

    # In-plane only. 10% stays under the folding limit (half the control-point spacing, about 12% of the
    # image), so TorchIO does not warn.
    return RandomElasticDeformation(
        num_control_points=ELASTIC_CONTROL_POINTS, max_displacement=(percent, percent, 0.0), locked_borders=2, **common
    )


def _gamma(log_gamma: float, **common: Any) -> Transform:
    from torchio import RandomGamma

    return RandomGamma(log_gamma=(-log_gamma, log_gamma), **common)


def _bias_field(coefficient: float, **common: Any) -> Transform:
    from torchio import RandomBiasField

    return RandomBiasField(coefficients=coefficient, order=3, **common)


def _motion(degrees: float, **common: Any) -> Transform:
    from torchio import RandomMotion

    # TorchIO rotates a one-slice image in-plane only and shifts it in-plane only.
    return RandomMotion(degrees=degrees, translation=degrees * MOTION_SHIFT_PER_DEGREE, num_transforms=2, **common)


def _ghosting(intensity: float, **common: Any) -> Transform:
    from torchio import RandomGhosting

    return RandomGhosting(num_ghosts=(4, 10), axes=(0, 1), intensity=(0.0, intensity), **common)


def _spike(intensity: float, **common: Any) -> Transform:
    from torchio import RandomSpike

    # A single number n means "0 to n spikes" to TorchIO; exactly one is wanted.
    return RandomSpike(num_spikes=(1, 1), intensity=(0.0, intensity), **common)


def _anisotropy(extra_factor: float, **common: Any) -> Transform:
    from torchio import RandomAnisotropy

    # Axis 2 is the one-slice depth: downsampling it would do nothing but warn.
    return RandomAnisotropy(axes=(0, 1), downsampling=(1.0, 1.0 + extra_factor), **common)


def _blur(percent: float, **common: Any) -> Transform:
    from torchio import RandomBlur

    return RandomBlur(std=(0.0, percent, 0.0, percent, 0.0, 0.0), **common)


def _noise(std: float, **common: Any) -> Transform:
    from torchio import RandomNoise

    return RandomNoise(mean=0.0, std=(0.0, std), **common)


# The one table of operations and their maxima, in the order they are applied: the anatomy's shape, then its
# contrast and the coil's bias, then the acquisition's artefacts, resolution loss, blur and, last, noise,
# so that nothing smooths the noise away. Intensities are in [0, 1] while TorchIO works on them.
MEDICAL_OPERATIONS: dict[str, MedicalOperation] = {
    "elastic_deformation": MedicalOperation(
        10.0, "largest in-plane displacement of a control point, % of the image", _elastic_deformation
    ),
    "gamma": MedicalOperation(0.5, "log-gamma drawn from [-s, s], for each channel", _gamma),
    "bias_field": MedicalOperation(0.5, "cubic-polynomial bias field coefficients drawn from [-s, s]", _bias_field),
    "motion": MedicalOperation(
        10.0, "largest rotation of the 2 simulated movements, degrees either way (shift: s / 2 % of the image)", _motion
    ),
    "ghosting": MedicalOperation(
        1.0, "ghost intensity drawn from [0, s], share of the ghosting k-space lines removed", _ghosting
    ),
    "spike": MedicalOperation(0.5, "k-space spike intensity drawn from [0, s], relative to the spectrum's maximum", _spike),
    "anisotropy": MedicalOperation(2.0, "downsampling factor drawn from [1, 1 + s] along one in-plane axis", _anisotropy),
    "blur": MedicalOperation(5.0, "Gaussian std drawn from [0, s] for each in-plane axis, % of the image", _blur),
    "noise": MedicalOperation(0.1, "Gaussian noise std drawn from [0, s], fraction of the intensity range", _noise),
}


class MedicalOperationSettings(ComponentSettings):
    """A probability and a magnitude per operation of MEDICAL_OPERATIONS."""

    elastic_deformation_probability: Probability = 0.0
    elastic_deformation_magnitude: Magnitude = DEFAULT_MAGNITUDE
    gamma_probability: Probability = 0.0
    gamma_magnitude: Magnitude = DEFAULT_MAGNITUDE
    bias_field_probability: Probability = 0.0
    bias_field_magnitude: Magnitude = DEFAULT_MAGNITUDE
    motion_probability: Probability = 0.0
    motion_magnitude: Magnitude = DEFAULT_MAGNITUDE
    ghosting_probability: Probability = 0.0
    ghosting_magnitude: Magnitude = DEFAULT_MAGNITUDE
    spike_probability: Probability = 0.0
    spike_magnitude: Magnitude = DEFAULT_MAGNITUDE
    anisotropy_probability: Probability = 0.0
    anisotropy_magnitude: Magnitude = DEFAULT_MAGNITUDE
    blur_probability: Probability = 0.0
    blur_magnitude: Magnitude = DEFAULT_MAGNITUDE
    noise_probability: Probability = 0.0
    noise_magnitude: Magnitude = DEFAULT_MAGNITUDE


# The table and the settings must name the same operations; a mismatch is a bug in this module.
assert set(MedicalOperationSettings.model_fields) == {
    f"{name}_{part}" for name in MEDICAL_OPERATIONS for part in ("probability", "magnitude")
}


def applied_medical_operations(settings: MedicalOperationSettings) -> dict[str, tuple[float, float]]:
    """(probability, strength) of each operation that can change an image, in table order."""
    applied = {}
    for name, operation in MEDICAL_OPERATIONS.items():
        probability = getattr(settings, f"{name}_probability")
        strength = operation.maximum * getattr(settings, f"{name}_magnitude")
        # Left out when it cannot change the image: that saves time and keeps magnitude 0 exact.
        if probability > 0 and strength > 0:
            applied[name] = (probability, strength)
    return applied


class MedicalTransform:
    """Applies a TorchIO transform to one uint8 [C, H, W] image (on the CPU) as a one-slice float volume
    [C, H, W, 1] with intensities in [0, 1]; returns uint8 [C, H, W], clipped to [0, 255]."""

    def __init__(self, transform: Transform) -> None:
        self.transform = transform

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from torchio import ScalarImage, Subject

        spacing = FIELD_OF_VIEW_MM / min(image.shape[-2:])
        volume = image.to(torch.float32).div_(255.0).unsqueeze(-1)
        subject = Subject(image=ScalarImage(tensor=volume, affine=np.diag([spacing, spacing, spacing, 1.0])))
        transformed = self.transform(subject)["image"].data[..., 0]
        # Artefacts and noise leave [0, 1]; rounding makes an image that no operation touched come back exact.
        return transformed.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform!r})"


def medical_transform(settings: MedicalOperationSettings) -> MedicalTransform | v2.Identity:
    """The operations whose probability and strength are above zero, in table order, each applied on a coin flip
    (TorchIO's own ``p``, drawn like every TorchIO parameter from torch's global RNG)."""
    applied = applied_medical_operations(settings)
    if not applied:
        return v2.Identity()
    from torchio import Compose

    # copy=False: MedicalTransform makes a fresh volume for every call, so TorchIO need not copy it again.
    return MedicalTransform(
        Compose(
            [
                MEDICAL_OPERATIONS[name].build(strength, p=probability, copy=False)
                for name, (probability, strength) in applied.items()
            ],
            copy=False,
        )
    )


class MedicalSettings(AugmentationSettings, MedicalOperationSettings):
    """The ``medical`` policy's settings."""


@AUGMENTATION_POLICIES.register("medical", settings=MedicalSettings)
def medical(settings: MedicalSettings) -> MedicalTransform | v2.Identity:
    return medical_transform(settings)
