"""cluster.yaml passes the checks `ray up` runs before it calls AWS, and gives a sweep what it needs."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

# Ray has no public validator: ray.autoscaler.sdk.bootstrap_config validates
# too, but then bootstraps the AWS provider (boto3, credentials). These are the
# two functions `ray up` calls first, in this order, so a config that passes
# them here fails on a real launch only for cloud-side reasons.
from ray.autoscaler._private.util import prepare_config, validate_config

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO_ROOT / "cluster.yaml"

# The custom resource generator actors request to be placed on a GPU node.
GENERATOR_RESOURCE = "generator_gpu"

Config = dict[str, Any]


def load_cluster_yaml() -> Config:
    with CLUSTER_YAML.open() as f:
        return yaml.safe_load(f)


def validate_like_ray_up(config: Config) -> Config:
    """Fill in the AWS defaults, merge setup commands, then schema-check; returns the merged config."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.fixture(scope="module")
def raw_config() -> Config:
    return load_cluster_yaml()


@pytest.fixture(scope="module")
def launched_config(raw_config: Config) -> Config:
    return validate_like_ray_up(raw_config)


def head_type(config: Config) -> Config:
    return config["available_node_types"][config["head_node_type"]]


def gpu_worker_types(config: Config) -> dict[str, Config]:
    return {
        name: node_type
        for name, node_type in config["available_node_types"].items()
        if name != config["head_node_type"] and node_type["resources"].get("GPU", 0) > 0
    }


def test_cluster_yaml_passes_ray_up_validation(launched_config: Config) -> None:
    # The fixture already validated; this pins down what was validated.
    assert launched_config["provider"]["type"] == "aws"
    assert launched_config["head_node_type"] in launched_config["available_node_types"]


def misspell_top_level_key(config: Config) -> None:
    config["idle_timeout_minute"] = config.pop("idle_timeout_minutes")


def fractional_gpu_on_worker(config: Config) -> None:
    next(iter(gpu_worker_types(config).values()))["resources"]["GPU"] = 0.5


def min_workers_as_string(config: Config) -> None:
    next(iter(gpu_worker_types(config).values()))["min_workers"] = "0"


@pytest.mark.parametrize(
    ("corrupt", "named_in_error"),
    [
        (misspell_top_level_key, "idle_timeout_minute"),
        (fractional_gpu_on_worker, "0.5"),
        (min_workers_as_string, "'0'"),
    ],
    ids=["misspelled-top-level-key", "fractional-gpu", "min-workers-string"],
)
def test_validator_rejects_corrupted_copy(
    raw_config: Config, corrupt: Callable[[Config], None], named_in_error: str
) -> None:
    corrupted = copy.deepcopy(raw_config)
    corrupt(corrupted)
    with pytest.raises(jsonschema.ValidationError) as error:
        validate_like_ray_up(corrupted)
    assert named_in_error in str(error.value)


def test_head_node_has_no_gpu(launched_config: Config) -> None:
    resources = head_type(launched_config)["resources"]
    assert resources.get("GPU", 0) == 0
    assert resources.get(GENERATOR_RESOURCE, 0) == 0
    # Explicit CPUs: otherwise the count depends on an EC2 lookup at launch.
    assert resources.get("CPU", 0) >= 1


def test_gpu_workers_advertise_gpu_and_generator_resource(launched_config: Config) -> None:
    workers = gpu_worker_types(launched_config)
    assert workers, "no worker node type advertises a GPU"
    for name, node_type in workers.items():
        resources = node_type["resources"]
        assert resources.get(GENERATOR_RESOURCE, 0) >= 1, name
        # More generator units than GPUs would let generators share a GPU.
        assert resources[GENERATOR_RESOURCE] <= resources["GPU"], name
        assert node_type["max_workers"] >= 1, name
        assert launched_config["max_workers"] >= node_type["max_workers"], name


def test_gpu_workers_scale_to_zero(raw_config: Config, launched_config: Config) -> None:
    for name, node_type in gpu_worker_types(launched_config).items():
        assert node_type["min_workers"] == 0, name
    # Set in the file, not inherited from Ray's defaults, which may change.
    assert 0 < raw_config["idle_timeout_minutes"] <= 15
    # Stopped (cached) nodes keep billing for their disks.
    assert raw_config["provider"]["cache_stopped_nodes"] is False


def project_mount(config: Config) -> str:
    """The remote path that file_mounts fills with the checkout `ray up` is run from."""
    remotes = [
        remote
        for remote, local in config["file_mounts"].items()
        if (REPO_ROOT / local).resolve() == REPO_ROOT
    ]
    assert len(remotes) == 1, f"file_mounts must copy the project root once: {config['file_mounts']}"
    return remotes[0]


def test_file_mounts_copy_the_project_root(launched_config: Config) -> None:
    remote = project_mount(launched_config)
    assert remote.startswith("~/")
    assert (REPO_ROOT / launched_config["file_mounts"][remote] / "pyproject.toml").is_file()


@pytest.mark.parametrize("commands_key", ["head_setup_commands", "worker_setup_commands"])
def test_every_node_installs_this_project(launched_config: Config, commands_key: str) -> None:
    remote = re.escape(project_mount(launched_config))
    installs_project = re.compile(rf"\bpip install\b.*\s-e\s+{remote}/?(\s|$)")
    commands = launched_config[commands_key]
    assert any(installs_project.search(command) for command in commands), commands


@pytest.mark.parametrize("commands_key", ["head_setup_commands", "worker_setup_commands"])
def test_nodes_run_the_local_ray_version(launched_config: Config, commands_key: str) -> None:
    # `ray up` and the cluster it starts must agree on Ray's version.
    pins = {
        match.group(1)
        for command in launched_config[commands_key]
        for match in re.finditer(r"ray\[[^\]]*\]==([\w.]+)", command)
    }
    assert pins == {ray.__version__}


def test_head_installs_boto3_for_the_autoscaler(launched_config: Config) -> None:
    # Without boto3 the head cannot start a single GPU worker.
    assert any("boto3" in command for command in launched_config["head_setup_commands"])


def test_all_nodes_share_one_explicit_ami(launched_config: Config) -> None:
    image_ids = {
        name: node_type["node_config"].get("ImageId", "")
        for name, node_type in launched_config["available_node_types"].items()
    }
    # Ray's fallback for a missing ImageId is an Ubuntu 18.04 AMI whose Python
    # is older than this project allows.
    assert all(image_id not in ("", "latest_dlami") for image_id in image_ids.values()), image_ids
    # Ray requires the same Python on every node.
    assert len(set(image_ids.values())) == 1, image_ids


def test_gpu_workers_can_write_to_bucket_storage(launched_config: Config) -> None:
    # Ray gives only the head an instance profile; trials and generators on the
    # workers write to --storage s3://... themselves.
    for name, node_type in gpu_worker_types(launched_config).items():
        assert "IamInstanceProfile" in node_type["node_config"], name


def test_cluster_yaml_holds_no_secrets() -> None:
    text = CLUSTER_YAML.read_text()
    assert not re.search(r"WANDB_API_KEY\s*[:=]\s*[^\s$]", text)
    assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text)
    assert "aws_secret_access_key" not in text.lower()


@pytest.mark.parametrize("commands_key", ["head_start_ray_commands", "worker_start_ray_commands"])
def test_every_node_starts_ray_with_token_authentication(launched_config: Config, commands_key: str) -> None:
    # A node started without the mode is refused by a token-auth head (InvalidAuthToken).
    starts = [command for command in launched_config[commands_key] if "ray start" in command]
    assert starts and all("RAY_AUTH_MODE=token ray start" in command for command in starts), starts


def test_every_node_gets_the_users_token_file_not_a_token_value(launched_config: Config) -> None:
    assert launched_config["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    # The token itself (Ray's are 32 hex digits or more) never appears in the file.
    assert not re.search(r"RAY_AUTH_TOKEN\s*=|\b[0-9a-f]{32,}\b", CLUSTER_YAML.read_text())
