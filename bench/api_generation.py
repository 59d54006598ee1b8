"""Image API throughput: images per second from the `openai_images` generator against the loopback image API
server (tests/image_api_server.py) with an injected latency per call, for 1, 4 and 16 concurrent requests.

    PYTHONPATH=. .venv/bin/python bench/api_generation.py [--latency-s 0.3] [--concurrency 1 4 16] [--path both]

Two paths: `generator` calls generate() once with every source (its own thread pool runs the calls);
`pool` asks the pool actor, which sends one API call per generate call to one generator actor that runs
`max_concurrent_requests` of them at once (Ray's max_concurrency), storing each image as it arrives, as in
a sweep. The target is at least 0.8 x N times the sequential rate for N = 4 and 16.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ray

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators import OpenAIImagesSettings, create_generator  # noqa: E402
from generators.actors.generator_actor import create_generator_actors  # noqa: E402
from generators.actors.pool_actor import get_synthetic_pool  # noqa: E402
from generators.pool import PoolKey, SyntheticPool  # noqa: E402
from tests.image_api_server import running_server  # noqa: E402

SHAPE = (1, 32, 32)


def images_for(concurrency: int) -> int:
    # Enough calls that the start and the last straggling wave are a small part of the time.
    return max(24, 16 * concurrency)


def serve(key: str, latency_s: float, base_urls: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    """The server in a process of its own, as a real one is: its CPU work does not take the client's."""
    with running_server(key, latency_s=latency_s) as server:
        base_urls.put(server.base_url)
        stop.wait(3600)


def generator_rate(base_url: str, concurrency: int) -> float:
    count = images_for(concurrency)
    settings = OpenAIImagesSettings(base_url=base_url, max_concurrent_requests=concurrency)
    generator = create_generator(settings, num_classes=1, channels=1, image_size=SHAPE[1])
    sources = np.random.default_rng(0).integers(0, 256, (count, *SHAPE), dtype=np.uint8)
    started = time.perf_counter()
    generator.generate(0, list(range(count)), sources)
    return count / (time.perf_counter() - started)


def pool_rate(base_url: str, concurrency: int, root: str) -> float:
    count = images_for(concurrency)
    settings = OpenAIImagesSettings(base_url=base_url, max_concurrent_requests=concurrency)
    key = PoolKey(generator="openai_images", settings_hash=settings.settings_hash, dataset=f"bench-{concurrency}")
    ids = [f"train/{index:04d}" for index in range(count)]
    SyntheticPool(root).register_dataset(key.dataset, ids, image_shape=SHAPE)
    actors = create_generator_actors(
        1, {"num_cpus": 0, "max_concurrency": concurrency}, key, settings, num_classes=1, channels=1, image_size=SHAPE[1]
    )
    ray.get(actors[0].describe.remote())  # the actor's start is not part of the rate
    pool = get_synthetic_pool(root)
    ray.get(pool.set_api_spend_cap.remote(1000.0))
    sources = dict(zip(ids, np.random.default_rng(0).integers(0, 256, (count, *SHAPE), dtype=np.uint8)))
    started = time.perf_counter()
    ray.get(pool.request.remote(key, 0, count, ids, ids, sources), timeout=600)
    rate = count / (time.perf_counter() - started)
    ray.kill(actors[0], no_restart=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-s", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--path", choices=["generator", "pool", "both"], default="both")
    arguments = parser.parse_args()
    key = "sk-bench-" + secrets.token_hex(8)
    os.environ["OPENAI_API_KEY"] = key  # before ray.init, so the generator actors inherit it
    paths = ["generator", "pool"] if arguments.path == "both" else [arguments.path]
    context = multiprocessing.get_context("spawn")
    base_urls, stop = context.Queue(), context.Event()
    server = context.Process(target=serve, args=(key, arguments.latency_s, base_urls, stop), daemon=True)
    server.start()
    try:
        run(paths, arguments, base_urls.get(timeout=60))
    finally:
        stop.set()
        server.join(timeout=10)


def run(paths: list[str], arguments: argparse.Namespace, base_url: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if "pool" in paths:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        print(f"latency {arguments.latency_s * 1000:.0f} ms per call, one image per call")
        for path in paths:
            sequential = None
            for concurrency in arguments.concurrency:
                if path == "generator":
                    rate = generator_rate(base_url, concurrency)
                else:
                    rate = pool_rate(base_url, concurrency, str(Path(folder) / "pool"))
                sequential = sequential or rate
                ratio = rate / (sequential * concurrency)
                print(f"{path:9s} N={concurrency:2d}: {images_for(concurrency):3d} images, {rate:6.2f} images/s, "
                      f"{rate / sequential:5.2f} x sequential ({ratio:.2f} of N x sequential)", flush=True)
        if ray.is_initialized():
            ray.shutdown()


if __name__ == "__main__":
    main()
