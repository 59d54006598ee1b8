"""The errors of the `generators` package, under one base class so a command can report any of them cleanly."""

import math


class GeneratorError(ValueError):
    """A generator name, setting, input or stored file is invalid; the message names it and what is allowed."""


class PoolError(GeneratorError):
    """A pool request, write or stored file is invalid; the message names what is wrong and what is allowed."""


class LeakageError(PoolError):
    """A request would let validation/test images or images outside a trial's real subset into its training data."""


class BudgetError(PoolError):
    """A request for images from a paid API would take the pool's recorded spend past the sweep's cap."""


def check_finite_loss(what: str, step: int, loss: float, learning_rate: float) -> None:
    """Stops a fit whose loss is no longer finite, naming the step and the setting to lower."""
    if not math.isfinite(loss):
        raise GeneratorError(
            f"{what} diverged at step {step} (loss {loss}); lower setting 'learning_rate' (now {learning_rate})"
        )
