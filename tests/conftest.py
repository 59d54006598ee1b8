"""Shared fixtures: the real MedMNIST folder (skipped when absent) and one local Ray instance for sweep tests."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never read or fill the user's Hugging Face cache, and never wait on the hub: set before anything imports
# huggingface_hub, which reads these once. Tests that need a cached model write it there (tests/hub_cache.py).
_HUB_CACHE = tempfile.mkdtemp(prefix="synthaug-tests-hub-")
atexit.register(shutil.rmtree, _HUB_CACHE, ignore_errors=True)
os.environ["HF_HUB_CACHE"] = _HUB_CACHE
os.environ["HF_HUB_OFFLINE"] = "1"

# Components register themselves when their package is imported; configurations name them.
import generators  # noqa: E402, F401

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Keep Ray and W&B quiet and local in tests.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real MedMNIST files not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a module of tiny models, as a generator actor has: on a machine shared with other jobs,
    two threads that wait on each other made them 10 to 40 times slower (bench/README.md)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_stable_diffusion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny random-weight Stable Diffusion folder (save_pretrained layout) for the whole session."""
    from generators.stable_diffusion.tiny import build_tiny_stable_diffusion

    return build_tiny_stable_diffusion(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def preset_models(tiny_stable_diffusion: Path) -> None:
    """What the presets name from the hub, cached as after a user's first download: the tiny Stable Diffusion
    under each Stable Diffusion hub id, random weights under each pretrained backbone's timm hub id."""
    from hub_cache import cache_model_folder, cache_timm_weights

    from spaces import list_presets, load_space

    backbones, diffusion_models = set(), set()
    for name in list_presets():
        for trial in load_space(name).validate_samples(name):
            if trial.model.pretrained and trial.model.pretrained_path is None:
                backbones.add(trial.model.backbone)
            if trial.synthetic.generator == "stable_diffusion" and not Path(trial.synthetic.settings.model).exists():
                diffusion_models.add(trial.synthetic.settings.model)
    for backbone in sorted(backbones):
        cache_timm_weights(backbone)
    for model in sorted(diffusion_models):
        cache_model_folder(model, tiny_stable_diffusion)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A real local Ray instance with 2 CPUs, started once for all sweep tests."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def module_ray() -> Iterator[None]:
    """Ray for one module, stopped at its end unless it was running before: the session's `ray_cluster` stays up
    into later modules, and some of those check that their work starts no Ray (test_run_validation)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()
