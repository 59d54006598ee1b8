"""Connecting the sweep's driver to Ray: a local instance it starts, or an existing cluster (--ray-address); and
letting go of it, within a bound, when the sweep is interrupted.

Ray >= 2.59 starts local clusters with token authentication, and `ray up` clusters get it too (docs/cluster.md).
A driver that connects to an explicit address without RAY_AUTH_MODE=token and the cluster's token is refused,
after Ray's C++ client has retried for about 20 s and printed a warning per try; the sweep says what to set in
one line instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator

import ray

from spaces import ConfigError

TOKEN_HELP = (
    "set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or in the file RAY_AUTH_TOKEN_PATH names, "
    "or ~/.ray/auth_token) for the driver, as for every node; `ray get-auth-token` on the head prints it "
    "(docs/cluster.md)"
)


def connect_to_ray(address: str | None, num_cpus: int | None) -> None:
    """Starts a local Ray instance (address None) or joins the cluster at `address`; a refused or unreachable
    cluster is a ConfigError naming what to set."""
    if address is not None and num_cpus is not None:
        raise ConfigError("num_cpus", num_cpus, "it sizes a local Ray instance; a cluster's nodes say their own CPUs")
    if ray.is_initialized():
        return
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
        return
    with _stderr_kept_unless_failed() as captured:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=True)
        except (ConnectionError, RuntimeError, ray.exceptions.AuthenticationError) as error:
            raise ConfigError("ray_address", address, connection_failure(error, captured())) from None


def connection_failure(error: BaseException, output: str) -> str:
    """Why joining the cluster failed, in one line: its token authentication, or nothing answering there."""
    chain = [output]
    while error is not None:
        chain.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    text = "\n".join(chain)
    if "InvalidAuthToken" in text or "AuthenticationError" in text or "no authentication token" in text:
        mode = os.environ.get("RAY_AUTH_MODE")
        if mode is None or mode.lower() != "token":
            return f"the Ray cluster there uses token authentication and refused this driver; {TOKEN_HELP}"
        return f"the Ray cluster there refused this driver's token: it is not the cluster's; {TOKEN_HELP}"
    return "no Ray cluster answered there; start one (`ray start --head` or `ray up cluster.yaml`) or check the address"


# How long an interrupted driver waits for Ray to shut down before it exits anyway (its local processes end with it).
RAY_SHUTDOWN_TIMEOUT_S = 20.0


def shut_down_ray() -> None:
    if ray.is_initialized():
        stopping = threading.Thread(target=ray.shutdown, daemon=True)
        stopping.start()
        stopping.join(RAY_SHUTDOWN_TIMEOUT_S)


@contextlib.contextmanager
def _stderr_kept_unless_failed() -> Iterator[Callable[[], str]]:
    """Holds what the process writes to stderr (file descriptor 2, where Ray's C++ client logs its retries)
    while connecting: written out afterwards if the block succeeds, dropped if it raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        failed = False

        def captured() -> str:
            sys.stderr.flush()
            held.seek(0)
            return held.read().decode(errors="replace")

        try:
            yield captured
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if not failed:
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))
                sys.stderr.flush()
