"""The command `python -m generators.tiny_stable_diffusion DEST`: writes the tiny random-weight Stable Diffusion of
generators.stable_diffusion.tiny (which says what it is for) to DEST."""

import sys

from generators.stable_diffusion.tiny import build_tiny_stable_diffusion, main

__all__ = ["build_tiny_stable_diffusion", "main"]

if __name__ == "__main__":
    sys.exit(main())
