"""The sweep's typed settings: one schema behind defaults, the space's suggestions, --config YAML and flags."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from search.settings.quality_settings import QualitySettings
from spaces import ConfigError, SearchSpace, StrictModel, load_space, read_yaml
from spaces.schema import config_error_from


class ResourceSettings(StrictModel):
    cpus: float = Field(1.0, gt=0, description="CPUs per trial")
    gpus: float = Field(0.0, ge=0, description="GPUs per trial; fractions share one GPU between trials")


class GeneratorResourceSettings(StrictModel):
    # Zero CPUs by default: on a laptop the generator shares the cores with the trials instead of
    # holding one back for the whole sweep; on a cluster give it a GPU and the custom resource.
    cpus: float = Field(0.0, ge=0, description="CPUs per generator actor")
    gpus: float = Field(0.0, ge=0, description="GPUs per generator actor")
    custom: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources, e.g. {generator_gpu: 1} for GPU nodes"
    )

    def ray_options(self) -> dict[str, Any]:
        return {"num_cpus": self.cpus, "num_gpus": self.gpus, "resources": dict(self.custom)}


class WandbSettings(StrictModel):
    mode: Literal["offline", "online", "disabled"] = Field(
        "offline", description="W&B logging: offline run files (default), online (needs WANDB_API_KEY), disabled"
    )
    project: str = Field("synthaug-search", description="W&B project name")
    entity: str | None = Field(None, description="W&B entity (team or user); online mode only")


class SweepConfig(StrictModel):
    """Every setting of a sweep. Each field is a CLI flag too (`num_samples` is `--num-samples`)."""

    data: str = Field("phantom", description="dataset source (see 'Data sources' below)")
    data_format: Literal["auto", "images", "dicom", "nifti"] = Field(
        "auto",
        description="which files a folder or manifest holds: auto (by suffix, DICOM also by its DICM preamble), "
        "or only images, dicom (every file, whatever its name) or nifti",
    )
    window: str | None = Field(
        None,
        description="DICOM window after the modality LUT: lung, mediastinum, bone, brain, abdomen, liver, "
        "soft_tissue or 'CENTER,WIDTH'; default: each file's own VOI LUT / window",
    )
    dicom_frame: int | None = Field(
        None, ge=0, description="the frame of multi-frame DICOM files to read (0 is the first); default: such files are refused"
    )
    slices: str | None = Field(
        None,
        description="2D slices of each NIfTI volume, AXIS:WHICH:N: axial:middle:16 (16 central slices), "
        "coronal:every:4, axial:foreground:0.2 (slices whose foreground share exceeds 0.2); default axial:middle:1",
    )
    skip_unreadable: bool = Field(False, description="leave out (and count) files that cannot be read instead of stopping")
    patient_from_filename: str | None = Field(
        None,
        description="regular expression whose first group is a file name's patient, e.g. '(person\\d+)_': "
        "one patient's images then stay in one split and real subsets keep whole patients",
    )
    image_root: str | None = Field(None, description="folder a manifest's relative paths start from; default: its folder")
    path_column: str = Field("path", description="manifest column of image paths")
    label_column: str = Field("label", description="manifest column of labels (names, or integers with --class-names)")
    split_column: str = Field("split", description="manifest column of splits (train / val / test), used when present")
    patient_column: str | None = Field(None, description="manifest column of patient ids; default: patient_id if present")
    class_names: str | None = Field(
        None, description="names of integer labels 0, 1, ..., comma-separated, e.g. 'normal,pneumonia'"
    )
    image_size: int | None = Field(
        None, ge=8, le=1024, description="square image size in pixels; default: 32 for phantom, else the source's"
    )
    channels: Literal[1, 3] | None = Field(None, description="1 (grayscale) or 3 (RGB); default: the source's")
    phantom_count: int = Field(1200, ge=100, le=1_000_000, description="number of phantom images")
    split_fractions: tuple[float, float, float] = Field(
        (0.7, 0.1, 0.2), description="train/val/test shares for sources without their own splits"
    )
    ordinal: bool | None = Field(None, description="labels are ordered grades (quadratic kappa); default: the source's")
    space: str | dict[str, Any] = Field("quick", description="search space: a preset name or a YAML file")
    searcher: Literal["optuna", "random", "grid"] = Field("optuna", description="how configurations are chosen")
    scheduler: Literal["asha", "none", "pbt"] = Field(
        "asha", description="early stopping (asha), none, or Population Based Training"
    )
    num_samples: int = Field(10, ge=1, description="number of configurations to try (grid: ignored, every grid point runs once)")
    max_concurrent: int | None = Field(None, ge=1, description="most trials at once; default: as many as resources allow")
    metric: str = Field("val_balanced_accuracy", description="validation metric the search optimises")
    objective: Literal["single", "multi"] = Field(
        "single",
        description="single: search the metric; multi: search the metric and cost_seconds together "
        "(Optuna's multi-objective TPE; searcher optuna only) for the Pareto front in the report",
    )
    mode: Literal["max", "min"] | None = Field(None, description="max or min; default: min for losses, else max")
    time_budget_s: float | None = Field(None, gt=0, description="stop starting and running trials after this many seconds")
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    repeats: int = Field(
        1,
        ge=1,
        le=1000,
        description="seeds per configuration (different real subsets and initialisations); the median is searched",
    )
    # At most 2**31 - 1: Optuna's samplers take seeds below 2**32, and finalists use seed + 1000 + r.
    seed: int = Field(0, ge=0, le=2**31 - 1, description="base seed: repeat r of every configuration uses seed + r")
    checkpoint_every: int = Field(
        0,
        ge=0,
        le=10_000,
        description="every N epochs a trial's checkpoint also holds its exact training state "
        "(float32 weights, optimizer), so a retried or resumed trial continues from there; 0: never, and a resumed "
        "trial retrains its epochs from the start with the same seeds (cheap for CPU-sized trials; set it for long "
        "GPU trials). Checkpoints hold the best weights where they are read (the finalists'; the search's without "
        "finalists); PBT stores the state every epoch",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where trials train")
    storage: str = Field(
        "./ray_results",
        description="Ray Tune storage: a folder or a URI (s3://, gs://; "
        "AWS_ENDPOINT_URL points s3:// at MinIO or another S3-compatible store)",
    )
    name: str | None = Field(None, description="sweep name; default: <space>-<date>-<time>")
    resume: bool = Field(False, description="resume the interrupted sweep <storage>/<name>")
    max_failures: int = Field(
        2,
        ge=0,
        le=100,
        description="times a failed trial is retried from its latest checkpoint (see "
        "checkpoint_every), e.g. after its process or node died; a trial that raises is retried too; 0: a failed trial "
        "stays failed",
    )
    report_dir: str | None = Field(
        None,
        description="where leaderboard, best config and plots go; default: <storage>/<name> for a local folder, "
        "else ./sweeps/<name>, copied to <storage>/<name> at the end",
    )
    twins: bool = Field(
        True,
        description="after the search, train the real-only twin (synthetic proportion 0, same seeds) of every "
        "configuration with synthetic images that the searcher did not draw, for the paired synthetic effect",
    )
    final_test: bool = Field(
        True, description="after the search, retrain the finalists on fresh seeds and evaluate them once on the test split"
    )
    finalists: int = Field(
        3,
        ge=0,
        le=50,
        description="configurations of the leaderboard's top retrained on fresh seeds (seed + 1000 + r) "
        "with the best real-only one, then tested once on the test split; 0: no finalists and no test evaluation",
    )
    answer_budget_share: float = Field(
        0.3,
        ge=0.0,
        lt=1.0,
        description="share of time_budget_s kept for the answer (real-only twins and finalists): the search gets the rest",
    )
    quality: QualitySettings = Field(
        default_factory=QualitySettings, description="synthetic-image quality after the sweep (synthetic_quality.csv)"
    )
    pool: str | None = Field(
        None, description="synthetic image pool: a folder or URI shared by sweeps; default: <storage>/synthetic_pool"
    )
    generator_replicas: int = Field(1, ge=1, le=64, description="generator actors per generator; they share the generation work")
    pregenerate: bool = Field(
        True,
        description="before trials start, make every image the space can ask of a noise generator (ddpm), so "
        "trials only read the pool; off: trials make missing images when they ask",
    )
    generator_resources: GeneratorResourceSettings = Field(default_factory=GeneratorResourceSettings)
    allow_image_upload: bool = Field(
        False,
        description="let image API generators (openai_images) send the trials' real training images to their "
        "host; without it a space that can draw one is refused before Ray starts",
    )
    max_api_spend_usd: float = Field(
        5.0,
        ge=0,
        description="the most the pool may have spent on image APIs in total (USD, across sweeps); a "
        "request that would pass it fails and spends nothing",
    )
    wandb: WandbSettings = Field(default_factory=WandbSettings)
    ray_address: str | None = Field(
        None, description="connect to this Ray cluster ('auto' on a cluster head); default: start a local one"
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray instance; default: all")

    @model_validator(mode="before")
    @classmethod
    def _mode_follows_the_metric(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("mode") is None:
            metric = values.get("metric", cls.model_fields["metric"].default)
            return {**values, "mode": "min" if str(metric).endswith("loss") else "max"}
        return values

    @field_validator("storage", "report_dir", "pool")
    @classmethod
    def _usable_location(cls, location: str | None) -> str | None:
        if location is not None and (not location.strip() or "\x00" in location):
            raise ValueError("a folder or URI is needed: not empty, without NUL bytes")
        return location

    @field_validator("name")
    @classmethod
    def _name_is_one_folder(cls, name: str | None) -> str | None:
        # The name is a folder under storage and the report folder: it must not climb out of them or nest.
        if name is not None and (
            not name.strip() or name in (".", "..") or any(character in name for character in "/\\") or not name.isprintable()
        ):
            raise ValueError("a sweep name is one folder name: not empty, '.' or '..', without / or \\ or control characters")
        return name

    @model_validator(mode="after")
    def _settings_agree(self) -> SweepConfig:
        if self.scheduler == "pbt" and self.searcher != "random":
            raise ValueError(
                f"scheduler 'pbt' explores by mutating running trials and Ray Tune does not combine it with a "
                f"search algorithm; use searcher 'random' (got {self.searcher!r})"
            )
        if abs(sum(self.split_fractions) - 1.0) > 1e-6 or min(self.split_fractions) <= 0:
            raise ValueError(f"split_fractions must be three positive shares summing to 1; got {list(self.split_fractions)}")
        if self.objective == "multi" and self.searcher != "optuna":
            raise ConfigError(
                "objective",
                self.objective,
                f"objective 'multi' searches the metric and cost_seconds through Optuna's "
                f"multi-objective sampler, and searcher {self.searcher!r} has one objective: use searcher 'optuna' "
                "or objective 'single'",
            )
        if self.metric.endswith("loss") and self.mode == "max":
            raise ValueError(f"metric {self.metric!r} is a loss and is minimised; set mode 'min'")
        return self

    def search_space(self) -> SearchSpace:
        return load_space(self.space)

    @property
    def finalists_on(self) -> bool:
        """Whether finalists retrain on fresh seeds and the test split is read (the default)."""
        return self.final_test and self.finalists > 0

    @property
    def search_budget_s(self) -> float | None:
        """The search's share of the time budget: the rest is kept for the answer (twins and finalists) when either
        runs."""
        if self.time_budget_s is None:
            return None
        share = self.answer_budget_share if (self.twins or self.finalists_on) else 0.0
        return self.time_budget_s * (1.0 - share)

    def sweep_name(self, timestamp: str) -> str:
        space_name = self.space if isinstance(self.space, str) else "inline"
        return self.name or f"{Path(space_name).stem}-{timestamp}"


def validate_sweep_config(values: Mapping[str, Any], source: str | None = None) -> SweepConfig:
    try:
        return SweepConfig.model_validate(dict(values))
    except ValidationError as error:
        raise config_error_from(error, source, SweepConfig) from None


def read_config_file(path: str) -> dict[str, Any]:
    values = read_yaml(Path(path))
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError("config", path, "the file must hold a mapping of sweep settings (see --help)")
    return dict(values)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Nested settings (resources, wandb) merge key by key; everything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and key != "space":
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_sweep_config(config_file: Mapping[str, Any], flags: Mapping[str, Any], source: str | None = None) -> SweepConfig:
    """Defaults < the space's own `sweep:` suggestions < --config file < command-line flags."""
    chosen = merge(config_file, flags)
    space = load_space(chosen.get("space", SweepConfig.model_fields["space"].default))
    unknown = sorted(set(space.sweep) - set(SweepConfig.model_fields))
    if unknown:
        raise ConfigError(
            f"sweep.{unknown[0]}",
            space.sweep[unknown[0]],
            f"unknown sweep setting in space {space.name!r}; allowed: {', '.join(SweepConfig.model_fields)}",
        )
    return validate_sweep_config(merge(space.sweep, chosen), source)
