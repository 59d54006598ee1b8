"""Images per second and fit seconds per generator on this machine: ddpm (fit from scratch), and stable_diffusion
txt2img, img2img and with a LoRA fine-tune (fit steps per second), on phantom images.

    .venv/bin/python bench/generator_throughput.py                      # the tiny random-weight SD, built here
    .venv/bin/python bench/generator_throughput.py --model stabilityai/stable-diffusion-2-1-base --device cuda \\
        --image-size 128 --sampling-steps 30 --lora-steps 100

Generation is timed after one warm-up call (which loads the pipeline); the load is reported apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generators import DDPMSettings, StableDiffusionSettings, create_generator  # noqa: E402
from generators.base import Generator  # noqa: E402
from generators.stable_diffusion.tiny import build_tiny_stable_diffusion  # noqa: E402
from trainables.datasets import load_dataset  # noqa: E402


def images_per_second(generator: Generator, count: int, sources: np.ndarray | None) -> tuple[float, float]:
    """(seconds of the warm-up call, images per second after it) for class 0."""
    started = time.perf_counter()
    generator.generate(0, [0], None if sources is None else sources[:1])
    warm_up = time.perf_counter() - started
    seeds = list(range(1, count + 1))
    started = time.perf_counter()
    generator.generate(0, seeds, None if sources is None else sources[np.arange(count) % len(sources)])
    return warm_up, count / (time.perf_counter() - started)


def fit_seconds(generator: Generator, images: np.ndarray, labels: np.ndarray) -> float:
    started = time.perf_counter()
    generator.fit(images, labels, seed=0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="stable_diffusion model (default: the tiny model, built in a temporary folder)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--image-size", type=int, default=32, help="the dataset's image size (phantom, 1 channel)")
    parser.add_argument("--images", type=int, default=16, help="images generated per measurement")
    parser.add_argument("--batch-size", type=int, default=8, help="stable_diffusion images per pipeline call")
    parser.add_argument("--sampling-steps", type=int, default=20, help="stable_diffusion scheduler steps")
    parser.add_argument("--lora-steps", type=int, default=20, help="LoRA fine-tune steps")
    parser.add_argument("--ddpm-steps", type=int, default=100, help="ddpm training steps (default settings otherwise)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 suits a busy machine")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)

    data = load_dataset("phantom", image_size=arguments.image_size).for_search()
    images, labels = data.train.images, data.train.labels
    shape = {"num_classes": data.num_classes, "channels": data.channels, "image_size": data.image_size,
             "class_names": data.class_names, "device": arguments.device}
    rows: list[tuple[str, str]] = []
    print(f"device {arguments.device}, torch threads {torch.get_num_threads()}, {len(images)} phantom images "
          f"at {arguments.image_size} px")

    ddpm = create_generator(DDPMSettings(training_steps=arguments.ddpm_steps), **shape)
    seconds = fit_seconds(ddpm, images, labels)
    rows.append(("ddpm fit", f"{seconds:.1f} s for {arguments.ddpm_steps} steps ({arguments.ddpm_steps / seconds:.1f} steps/s)"))
    rows.append(("ddpm generate (25 DDIM steps)", f"{images_per_second(ddpm, arguments.images, None)[1]:.2f} images/s"))

    with tempfile.TemporaryDirectory() as folder:
        model = arguments.model or str(build_tiny_stable_diffusion(Path(folder) / "tiny-sd"))
        common = {"model": model, "sampling_steps": arguments.sampling_steps, "batch_size": arguments.batch_size}
        for mode in ("txt2img", "img2img"):
            generator = create_generator(StableDiffusionSettings(mode=mode, strength=0.5, **common), **shape)
            load, rate = images_per_second(generator, arguments.images, images if mode == "img2img" else None)
            steps = arguments.sampling_steps if mode == "txt2img" else int(0.5 * arguments.sampling_steps)
            rows.append((f"stable_diffusion {mode} ({steps} steps)", f"{rate:.2f} images/s (load and first call {load:.1f} s)"))
        lora = create_generator(
            StableDiffusionSettings(mode="txt2img", fine_tune="lora", training_steps=arguments.lora_steps, **common), **shape
        )
        seconds = fit_seconds(lora, images, labels)
        rows.append((
            "stable_diffusion LoRA fit (rank 8, batch 1)",
            f"{seconds:.1f} s for {arguments.lora_steps} steps ({arguments.lora_steps / seconds:.2f} steps/s, with the load)",
        ))
        rate = images_per_second(lora, arguments.images, None)[1]
        rows.append(("stable_diffusion txt2img with the adapter", f"{rate:.2f} images/s"))
    # Other jobs share this machine; the load average says how much of it the figures had.
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| measurement | figure |\n|---|---|")
    for name, figure in rows:
        print(f"| {name} | {figure} |")


if __name__ == "__main__":
    main()
