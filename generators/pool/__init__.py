"""The persistent synthetic image pool, without Ray (generators.actors puts an actor in front of it).

`synthetic_pool` is the one front (SyntheticPool); behind it, one concern per module: `keys` (what names a set of
images and each image's seed), `storage` (local folders and object stores, whole-file writes), `batches` (a written
batch: shard, manifest, checksums), `manifest_index` and `shards` (reading them back), `model_store` (fitted
generators), `dataset_registry` (a dataset's training ids), `leakage` (which images a request may draw),
`maintenance` (verify, clean), `api_spend` (image API spend against its cap) and `generation_cost` (what a key's
images cost to make)."""

from generators.errors import LeakageError, PoolError
from generators.pool.batches import CorruptBatchError
from generators.pool.keys import PoolKey, SyntheticRecord, canonical_slots, derive_seed
from generators.pool.leakage import AdmittedRequest
from generators.pool.storage import open_pool_root, write_whole_file
from generators.pool.synthetic_pool import SyntheticPool

__all__ = [
    "AdmittedRequest",
    "CorruptBatchError",
    "LeakageError",
    "PoolError",
    "PoolKey",
    "SyntheticPool",
    "SyntheticRecord",
    "canonical_slots",
    "derive_seed",
    "open_pool_root",
    "write_whole_file",
]
