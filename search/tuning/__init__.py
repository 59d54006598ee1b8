"""Everything that calls Ray Tune: the trainable, searchers and schedulers by name, the one place a Tuner is built
or restored (`tuner`), the twins' and finalists' runs, reading results, storage, the connection to Ray, Ctrl-C,
the live W&B callback, and Ray's private names (`_ray_compat`, the only module that touches them)."""
