"""The only Ray code in generators: `pool_actor`, the one named actor in front of the synthetic pool that admits
requests and batches generation, and `generator_actor`, the actors that fit a generator and make its images."""

from generators.actors.generator_actor import GeneratorActor, create_generator_actors, prepare_generator_actors
from generators.actors.pool_actor import SyntheticPoolActor, get_synthetic_pool, pool_actor_name

__all__ = [
    "GeneratorActor",
    "SyntheticPoolActor",
    "create_generator_actors",
    "get_synthetic_pool",
    "pool_actor_name",
    "prepare_generator_actors",
]
