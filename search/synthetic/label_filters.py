"""Before trials start: fit the label filter of `synthetic.filter: label_fidelity` once per repeat seed, on that
seed's generator fit subset only, and hand it to trials with the SyntheticSource."""

from __future__ import annotations

import dataclasses
import time

from search.synthetic.demand import synthetic_trials
from spaces import SearchSpace
from trainables.datasets import SearchData
from trainables.synthetic_filter import DEFAULT_RECIPE, SmallClassifierRecipe, fit_label_filter
from trainables.synthetic_mixing import SyntheticSource, generator_fit_subset


def _decides_the_filter(key: str) -> bool:
    return key.startswith(("synthetic.filter", "synthetic.proportion", "synthetic.classes", "synthetic.mode"))


def space_uses_label_filter(space: SearchSpace) -> bool:
    """Whether any trial with synthetic images can draw `synthetic.filter: label_fidelity`."""
    return any(trial.synthetic.filter == "label_fidelity" for trial in synthetic_trials(space, _decides_the_filter))


def attach_label_filters(
    source: SyntheticSource, data: SearchData, seeds: list[int], recipe: SmallClassifierRecipe = DEFAULT_RECIPE
) -> SyntheticSource:
    """The source with a label filter per seed. Each is fit on the real subset fitted generators of that seed are
    fit on (per class the smallest real fraction the space draws; nested, so inside every trial's own subset):
    never a validation or test image, never more real images than the generator saw. An image-to-image generator
    draws its sources from the trial's subset, which holds that fit subset too, so one filter per seed serves
    every generator and every trial of the seed."""
    filters = {}
    for seed in seeds:
        indices, identity = generator_fit_subset(data, source.fit_fractions, seed)
        started = time.perf_counter()
        filters[seed] = fit_label_filter(
            data.train.images[indices], data.train.labels[indices], fit_subset=identity, num_classes=data.num_classes,
            seed=seed, recipe=recipe,
        )
        print(f"Label filter (seed {seed}): fit on {len(indices)} training images in {time.perf_counter() - started:.0f} s",
              flush=True)
    return dataclasses.replace(source, label_filters=filters)
