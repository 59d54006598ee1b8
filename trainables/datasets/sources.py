"""The registry of data sources: a loader registered under a name turns the location part of a
`--data` string into `DatasetSplits`; `load_dataset` decides which name a string means."""

from __future__ import annotations

from collections.abc import Callable

from spaces.registry import Registry
from trainables.datasets.image_set import DatasetSplits
from trainables.datasets.load_options import LoadOptions

# location: what identifies the data for that source (a path, a MedMNIST flag; "" for phantom).
Loader = Callable[[str, LoadOptions], DatasetSplits]

DATA_SOURCES: Registry[Loader] = Registry("data source", "data")
