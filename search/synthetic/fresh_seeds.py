"""Generators for the finalists' fresh seeds: a fitted generator learns from its seed's real subset, so seeds the
search never used need fits of their own (or the pool's, from an earlier run), which count against the time budget."""

from __future__ import annotations

import dataclasses

from generators.pool import PoolKey, SyntheticPool
from search.settings.sweep_record import SweepRecord
from search.synthetic.demand import GeneratorDemand
from search.synthetic.label_filters import attach_label_filters, space_uses_label_filter
from search.synthetic.preparation import PreparedGenerators, prepare_generators
from trainables.datasets import DatasetSplits, SearchData
from trainables.synthetic_mixing import SyntheticSource


def fits_too_costly(
    settings_hashes: set[str | None], record: SweepRecord, demands: list[GeneratorDemand], data: SearchData,
    fit_fractions: dict[int, float], pool_root: str, seeds: list[int], left_s: float | None,
) -> tuple[set[str], str]:
    """The generators (settings hashes, of those given) whose fits on the fresh seeds cost too much, and why: each
    must be fit on every fresh seed the pool holds no fit for, and those fits (at the pace of the search's own
    fits, as the pool recorded them) would take more than half the time left. Nothing is too costly without a
    budget."""
    if left_s is None:
        return set(), ""
    pool, source = SyntheticPool(pool_root), SyntheticSource(pool_root=pool_root, fit_fractions=fit_fractions)
    estimate, needed = 0.0, set()
    for demand in demands:
        settings = demand.settings
        if not settings.needs_fit or settings.settings_hash not in settings_hashes:
            continue

        def stored(seed: int) -> PoolKey | None:
            return pool.find_generator(source.pool_key(settings, data, seed), settings.fit_settings_hash)  # noqa: B023

        paces = [float(pool.generator_info(key).get("fit_seconds", 0.0))
                 for key in (stored(seed) for seed in range(record.sweep.seed, record.sweep.seed + record.sweep.repeats))
                 if key is not None]
        missing = [seed for seed in seeds if stored(seed) is None]
        if missing:
            needed.add(settings.settings_hash)
            estimate += (max(paces) if paces else record.seconds.get("generators", 0.0)) * len(missing)
    if not needed or estimate <= 0.5 * left_s:
        return set(), ""
    return needed, (f"not trained: its generator would need fitting on the fresh seeds (about {estimate:.0f} s at the "
                    f"search's pace), more than half the time budget left ({left_s:.0f} s)")


def fresh_seed_generators(
    settings_hashes: set[str | None], record: SweepRecord, demands: list[GeneratorDemand], fit_fractions: dict[int, float],
    dataset: DatasetSplits, pool_root: str, seeds: list[int],
) -> PreparedGenerators | None:
    """The generators of the given settings hashes, fit (or loaded from the pool) on the fresh seeds' fit subsets;
    None when no finalist draws from one."""
    chosen = [demand for demand in demands if demand.settings.settings_hash in settings_hashes]
    if not chosen:
        return None
    fresh = record.sweep.model_copy(update={"seed": seeds[0], "repeats": len(seeds)})
    data = dataset.for_search()
    generators = prepare_generators(chosen, fit_fractions, data, fresh, pool_root)
    if space_uses_label_filter(record.search_space):
        generators = dataclasses.replace(generators, source=attach_label_filters(generators.source, data, seeds))
    return generators
