"""Ray's private names the sweep relies on (search.tuning._ray_compat) are still there in the installed Ray: an
upgrade that changes them fails here, naming what changed, before a sweep meets it."""

from __future__ import annotations

import logging

import ray

from search.tuning import _ray_compat


def test_every_private_name_the_sweep_uses_is_still_there() -> None:
    problems = _ray_compat.check_ray_internals()
    assert not problems, (
        f"Ray {ray.__version__} changed what search/tuning/_ray_compat.py relies on (checked against "
        f"{_ray_compat.RAY_VERSION_CHECKED}):\n" + "\n".join(problems)
    )


def test_the_check_would_notice_a_missing_name(monkeypatch) -> None:
    monkeypatch.setattr(_ray_compat, "RESULTS_LOGGER", "ray.tune.analysis.no_such_module")
    monkeypatch.delattr(_ray_compat.WandbLoggerCallback, "_cleanup_logging_actors")
    problems = _ray_compat.check_ray_internals()
    assert any("no_such_module" in problem for problem in problems)
    assert any("_cleanup_logging_actors" in problem for problem in problems)


def test_the_results_warning_filter_hides_only_that_warning(caplog) -> None:
    _ray_compat.hide_trials_without_results_warning()
    _ray_compat.hide_trials_without_results_warning()  # once is enough: no second filter
    logger = logging.getLogger(_ray_compat.RESULTS_LOGGER)
    assert sum(isinstance(f, _ray_compat._WithoutResultFiles) for f in logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger=_ray_compat.RESULTS_LOGGER):
        logger.warning("Failed to fetch metrics for 1 trial(s): FileNotFoundError")
        logger.warning("something else went wrong")
    assert [record.getMessage() for record in caplog.records] == ["something else went wrong"]
