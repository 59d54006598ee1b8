"""Why joining a Ray cluster failed, in one line (the real refusal is in tests/test_multi_node.py)."""

from __future__ import annotations

import pytest
import ray

from search.tuning.connection import connect_to_ray, connection_failure
from spaces import ConfigError


def refused(message: str) -> ConnectionError:
    try:
        try:
            raise ray.exceptions.AuthenticationError(message)
        except ray.exceptions.AuthenticationError as cause:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from cause
    except ConnectionError as error:
        return error


def test_a_refused_token_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    text = connection_failure(refused("RPC error: InvalidAuthToken: Authentication token is missing or incorrect"), "")
    assert "uses token authentication" in text and "RAY_AUTH_MODE=token" in text and "RAY_AUTH_TOKEN" in text
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert "is not the cluster's" in connection_failure(refused("RPC error: InvalidAuthToken"), "")


def test_nothing_answering_is_not_blamed_on_the_token() -> None:
    error = ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")
    assert connection_failure(error, "failed to connect to GCS: Deadline Exceeded").startswith("no Ray cluster answered")


def test_num_cpus_belongs_to_a_local_instance_only() -> None:
    was_running = ray.is_initialized()
    with pytest.raises(ConfigError, match="num_cpus"):
        connect_to_ray("10.0.0.1:6379", 2)
    assert ray.is_initialized() == was_running
