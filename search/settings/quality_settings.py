"""How the synthetic-image quality after a sweep is measured (`quality:` of the sweep settings); the measuring is
search.diagnostics'."""

from __future__ import annotations

from pydantic import Field

from spaces import StrictModel


class FeatureExtractorSettings(StrictModel):
    """A user's own feature extractor: a timm model name and a local weights file (safetensors or a torch state
    dict, read by timm's loader, which adapts the first convolution to grayscale), run at `image_size` (images are
    resized to it: 224 for a SwAV ResNet-50, 299 for Inception v3; None keeps the dataset's size). Its pooled
    features (timm's `num_classes=0`) are what is measured."""

    backbone: str
    weights: str
    image_size: int | None = Field(None, ge=8, le=1024)


class QualitySettings(StrictModel):
    """How synthetic images are measured. Each (pool key, class) is measured on its first `max_images_per_class`
    images in canonical order, against at most as many training images of the class."""

    max_images_per_class: int = Field(500, ge=2, le=100_000)
    precision_recall_k: int = Field(3, ge=1, le=100)       # Kynkäänniemi et al. 2019 use k = 3
    density_coverage_k: int = Field(5, ge=1, le=100)       # Naeem et al. 2020 recommend k = 5
    memorization_percentile: float = Field(5.0, gt=0.0, le=50.0)
    kid_subset_size: int = Field(50, ge=2, le=10_000)
    # The classification accuracy score: a small classifier (trainables.synthetic_filter.SmallClassifierRecipe:
    # basic CNN, Adam, class-weighted loss) trained `cas_epochs` on the synthetic images alone, tested on the real
    # validation images. Bounded: cas_epochs x (classes x max_images_per_class) training steps' worth of images.
    classification_accuracy_score: bool = True
    cas_epochs: int = Field(10, ge=1, le=1000)
    grid_samples: int = Field(8, ge=1, le=64)
    # A user's own extractor instead of the real-only classifier's penultimate layer.
    feature_extractor: FeatureExtractorSettings | None = None
