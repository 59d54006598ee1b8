"""The sweep's settings, found before Ray starts: the typed schema (`sweep_config`), its command line (`cli`), the
checks against the dataset (`sweep_checks`), where a sweep's files live (`locations`) and the sweep's record
(`sweep_record`), from which `--resume` and `python -m search.report` work."""
