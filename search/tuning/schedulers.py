"""Ray Tune trial schedulers by name (the SCHEDULERS registry): ASHA early stopping, FIFO, and Population Based
Training."""

from __future__ import annotations

from collections.abc import Callable

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining, TrialScheduler

from search.tuning.searchers import tune_domain
from spaces import ConfigError, Registry, SearchSpace

ASHA_REDUCTION_FACTOR = 3
SchedulerFactory = Callable[[SearchSpace, int], TrialScheduler]
# Names are SweepConfig.scheduler's allowed values (tests/test_tuning_registries.py holds the two together).
SCHEDULERS: Registry[SchedulerFactory] = Registry("scheduler", "scheduler")


def asha_grace_period(max_epochs: int) -> int:
    return min(2, max_epochs)


@SCHEDULERS.register("asha")
def asha(space: SearchSpace, max_epochs: int) -> TrialScheduler:
    # Epochs are the time unit: every trial reports once per epoch.
    return ASHAScheduler(
        time_attr="training_iteration", max_t=max_epochs, grace_period=asha_grace_period(max_epochs),
        reduction_factor=ASHA_REDUCTION_FACTOR,
    )


def asha_rungs(max_epochs: int) -> tuple[int, ...]:
    """The epochs after which ASHA may stop a trial: grace period x reduction factor^k below max_t (a trial that
    reaches max_t ends by itself)."""
    rungs, epoch = [], asha_grace_period(max_epochs)
    while epoch < max_epochs:
        rungs.append(epoch)
        epoch *= ASHA_REDUCTION_FACTOR
    return tuple(rungs)


@SCHEDULERS.register("none")
def fifo(space: SearchSpace, max_epochs: int) -> TrialScheduler:
    return FIFOScheduler()


@SCHEDULERS.register("pbt")
def population_based_training(space: SearchSpace, max_epochs: int) -> TrialScheduler:
    """Population Based Augmentation: mutate the space's `mutable:` parameters (magnitudes, lr) while training."""
    mutable = space.mutable_parameters()
    if not mutable:
        raise ConfigError(
            "scheduler", "pbt", f"space {space.name!r} marks no parameter `mutable: true`, so there is nothing for PBT to mutate"
        )
    return PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=max(1, max_epochs // 4),
        hyperparam_mutations={key: tune_domain(parameter) for key, parameter in mutable.items()},
        quantile_fraction=0.25,
        resample_probability=0.25,
    )


def stopping_epochs(scheduler: str, max_epochs: int) -> tuple[int, ...]:
    """Epochs after which the named scheduler may stop a trial before its end (PBT: none; it checkpoints every
    epoch anyway)."""
    return asha_rungs(max_epochs) if scheduler == "asha" else ()
