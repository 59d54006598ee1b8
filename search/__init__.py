"""The sweep driver: `python -m search.run`, its CLI and settings, Tuner, searchers, schedulers, reports."""
