"""A tiny Stable Diffusion with random weights, built from configs and saved in `save_pretrained` layout, so a
machine without a GPU or hub access can try the whole `stable_diffusion` path (fit, pool, sweep) in minutes:

    python -m generators.tiny_stable_diffusion ./tiny-sd
    # then in a space:  synthetic.settings.model: {choice: [./tiny-sd]}

Its images are noise-like until fine-tuned: it tests the plumbing, not image quality. The shapes follow diffusers'
own fast tests (UNet widths (4, 8), cross-attention width 8, a 2-layer CLIP text encoder of width 8)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

# 32 px images: the VAE halves once (two levels), so the UNet sees 16 x 16 latents.
TINY_RESOLUTION = 32
TEXT_WIDTH = 8


def _byte_vocabulary() -> tuple[dict[str, int], list[str]]:
    """A character-level byte BPE vocabulary in CLIP's form (every byte, alone and word-final), with no merges:
    any text tokenizes, one token per character, and every single letter is a word token of its own."""
    from tokenizers.pre_tokenizers import ByteLevel

    characters = sorted(ByteLevel.alphabet())
    tokens = ["<|startoftext|>", "<|endoftext|>", *characters, *(f"{character}</w>" for character in characters)]
    return {token: index for index, token in enumerate(tokens)}, []


def build_tiny_stable_diffusion(destination: str | Path, *, seed: int = 0) -> Path:
    """Writes a StableDiffusionPipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
    scheduler/) with random weights drawn from `seed`; returns the folder."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocabulary, merges = _byte_vocabulary()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=TINY_RESOLUTION // 2,
            in_channels=4,
            out_channels=4,
            block_out_channels=(4, 8),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=TEXT_WIDTH,
            attention_head_dim=2,
            norm_num_groups=2,
        )
        vae = AutoencoderKL(
            sample_size=TINY_RESOLUTION,
            in_channels=3,
            out_channels=3,
            block_out_channels=(4, 8),
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            norm_num_groups=2,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(vocabulary),
                hidden_size=TEXT_WIDTH,
                intermediate_size=16,
                num_hidden_layers=2,
                num_attention_heads=2,
                max_position_embeddings=77,
                bos_token_id=vocabulary["<|startoftext|>"],
                eos_token_id=vocabulary["<|endoftext|>"],
                pad_token_id=vocabulary["<|endoftext|>"],
            )
        )
    tokenizer = CLIPTokenizer(vocab=vocabulary, merges=merges, model_max_length=77)
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    destination = Path(destination)
    pipeline.save_pretrained(destination, safe_serialization=True)
    return destination


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generators.tiny_stable_diffusion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("destination", help="folder to write (created; an existing pipeline there is overwritten)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    arguments = parser.parse_args(argv)
    try:
        print(build_tiny_stable_diffusion(arguments.destination, seed=arguments.seed))
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
