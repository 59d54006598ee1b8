"""A Hugging Face cache as a user's machine holds it after downloading once, written by tests: the tiny Stable
Diffusion under a real model's hub id, random timm weights under a pretrained backbone's. Nothing is downloaded;
the code under test finds them the way it finds real downloads (huggingface_hub's cache layout)."""

from __future__ import annotations

import shutil
from pathlib import Path

import safetensors.torch
import timm
from huggingface_hub import constants

# The revision the cache's refs/main points at; any 40 hex digits do.
REVISION = "0" * 40


def snapshot_folder(repo_id: str) -> Path:
    """The folder of the cached snapshot of `repo_id` (created, with refs/main pointing at it)."""
    repository = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    (repository / "refs").mkdir(parents=True, exist_ok=True)
    (repository / "refs" / "main").write_text(REVISION)
    snapshot = repository / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def cache_model_folder(repo_id: str, folder: Path) -> None:
    """A save_pretrained folder as the cached snapshot of `repo_id`."""
    shutil.copytree(folder, snapshot_folder(repo_id), dirs_exist_ok=True)


def cache_timm_weights(backbone: str) -> str:
    """Random weights of a timm model under the hub id its pretrained config names; returns that id."""
    config = timm.get_pretrained_cfg(backbone)
    if config is None or not config.hf_hub_id:
        raise ValueError(f"timm publishes no hub weights for {backbone!r}")
    model = timm.create_model(backbone, pretrained=False)
    safetensors.torch.save_file(
        {name: tensor.contiguous() for name, tensor in model.state_dict().items()},
        str(snapshot_folder(config.hf_hub_id) / "model.safetensors"),
    )
    return config.hf_hub_id
