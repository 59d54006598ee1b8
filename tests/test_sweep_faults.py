"""Faults during a sweep, each injected for real into `python -m search.run` running in its own process on the
phantom data: a trial's worker process killed, the driver killed with SIGKILL then resumed, and Ctrl-C. Nothing
may be lost or done twice: every trial ends on the leaderboard once, with all its epochs, and what was finished
or generated before the fault is not redone."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sweep_process import SweepDriver, leaderboard, result_rows, wait_for

from generators.pool import SyntheticPool

pytestmark = [pytest.mark.slow, pytest.mark.faults]

EPOCHS = 20
# Two configurations of a tiny CNN. Many short epochs (a fifth of a second on a busy 2-core machine): a fault lands
# mid-trial, after its first checkpoint.
SPACE = {
    "fixed": {"training.batch_size": 32, "model.backbone": "basic_cnn", "real_fraction": 1.0, "training.epochs": EPOCHS},
    "parameters": {"optimizer.lr": {"choice": [0.001, 0.003]}},
}
# Faults mid-trial: after a checkpoint and at least this many epochs before the end.
MARGIN_EPOCHS = 8
SWEEP_TIMEOUT_S = 240
# A stopped sweep must stop in seconds; this only catches a hang.
STOP_BOUND_S = 30


def sweep_flags(tmp_path: Path, name: str, space: dict = SPACE) -> list[str]:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return [
        "--storage", str(path.parent / "results"), "--space", str(path), "--data", "phantom", "--phantom-count", "400",
        "--image-size", "24", "--searcher", "grid",
        "--scheduler", "none", "--num-cpus", "2", "--name", name, "--wandb-mode", "disabled", "--no-final-test",
        "--no-twins",
        # Under --scheduler none a trial checkpoints only at its end unless asked to; every second epoch here, with
        # the exact training state, so faults land after a checkpoint (the default's retraining from a checkpoint
        # without that state is tested in test_checkpoint_storage.py).
        "--checkpoint-every", "2",
    ]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[SweepDriver]:
    driver = SweepDriver()
    try:
        yield driver
    finally:
        driver.stop()


def checkpointed_epochs(rows: list[dict]) -> list[int]:
    return [row["epoch"] for row in rows if row.get("checkpoint_dir_name")]


def assert_complete(report: Path, trials: int) -> None:
    """Every trial on the leaderboard once, each with all its epochs."""
    board = leaderboard(report)
    assert len(board) == trials and board["trial_id"].is_unique, board
    assert set(board["status"]) == {"ok"} and (board["epochs_run"] == EPOCHS).all(), board


def pool_state(root: Path) -> list[tuple]:
    """What the pool holds: (key, class, images, first and last creation time) per generator key and class."""
    return sorted(tuple(sorted(row.items())) for row in SyntheticPool.open_existing(str(root)).summary())


def test_a_killed_trial_process_is_retried_from_its_checkpoint(driver: SweepDriver, tmp_path: Path) -> None:
    report = tmp_path / "results" / "killed-trial"
    process = driver.start(*sweep_flags(tmp_path, "killed-trial"), "--max-failures", "2")

    def a_checkpointed_trial() -> tuple[str, dict] | None:
        for trial, rows in result_rows(report).items():
            if checkpointed_epochs(rows) and 3 <= rows[-1]["epoch"] <= EPOCHS - MARGIN_EPOCHS:
                return trial, rows[-1]
        return None

    trial, last = wait_for(a_checkpointed_trial, SWEEP_TIMEOUT_S, "a trial's third epoch and a checkpoint", process)
    os.kill(int(last["pid"]), signal.SIGKILL)
    process.wait(timeout=SWEEP_TIMEOUT_S)
    output = driver.output()
    assert process.returncode == 0, output[-4000:]

    assert_complete(report, trials=2)
    rows = result_rows(report)[trial]
    epochs = [row["epoch"] for row in rows]
    # The retry ran in another process ...
    restart = next(index for index, row in enumerate(rows) if int(row["pid"]) != int(last["pid"]))
    # ... from a checkpoint the trial had written before its process died, not from epoch 1 ...
    checkpointed_before = checkpointed_epochs(rows[:restart])
    assert epochs[restart] - 1 in checkpointed_before, (epochs, checkpointed_before)
    assert epochs.count(1) == 1, epochs
    # ... to the last epoch, without a gap.
    assert epochs[restart:] == list(range(epochs[restart], EPOCHS + 1)), epochs
    assert "Restored on" in output and "The trial terminated successfully after retrying" in output, output[-4000:]


def test_a_sweep_whose_driver_was_killed_resumes_without_redoing_anything(driver: SweepDriver, tmp_path: Path) -> None:
    # One short configuration finishes while the long one trains; both draw oversampled images through the pool.
    fixed = {key: value for key, value in SPACE["fixed"].items() if key != "training.epochs"}
    space = {
        "fixed": {**fixed, "synthetic.generator": "oversample", "synthetic.proportion": 0.5},
        "parameters": {"training.epochs": {"choice": [3, EPOCHS]}},
    }
    flags = sweep_flags(tmp_path, "killed-driver", space)
    report = tmp_path / "results" / "killed-driver"
    process = driver.start(*flags)

    def short_done_long_checkpointed() -> dict[str, list[dict]] | None:
        rows = result_rows(report)
        done = [trial for trial, lines in rows.items() if lines and lines[-1]["epoch"] == 3]
        running = [trial for trial, lines in rows.items()
                   if checkpointed_epochs(lines) and 3 < lines[-1]["epoch"] <= EPOCHS - MARGIN_EPOCHS]
        return rows if done and running else None

    before = wait_for(short_done_long_checkpointed, SWEEP_TIMEOUT_S, "one trial finished and one checkpointed", process)
    # The driver alone, as the OOM killer or a lost SSH session would: the Ray processes it started may outlive it
    # for a moment (the kernel ends them with it); the resume below does not wait for that.
    assert driver.ray_processes()
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    leftover = driver.ray_processes()
    pool_before = pool_state(tmp_path / "results" / "synthetic_pool")
    assert pool_before and all(dict(row)["count"] > 0 for row in pool_before)

    resumed = driver.run("--resume", "--name", "killed-driver", "--storage", str(tmp_path / "results"), timeout_s=SWEEP_TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    assert_complete_epochs(report, {3, EPOCHS})
    after = result_rows(report)
    short = next(trial for trial, lines in before.items() if lines[-1]["epoch"] == 3)
    # The finished trial was not trained again (at most its final result is reported once more).
    assert [row["epoch"] for row in after[short]][:3] == [1, 2, 3]
    assert all(row["epoch"] == 3 for row in after[short][3:]), after[short]
    long = next(trial for trial in after if trial != short)
    epochs = [row["epoch"] for row in after[long]]
    assert epochs.count(1) == 1 and epochs[-1] == EPOCHS, epochs
    # The pool's images were reused, not made again: same images, same creation times.
    assert pool_state(tmp_path / "results" / "synthetic_pool") == pool_before
    assert (report / "report.html").is_file() and (report / "storage.json").is_file()
    print(f"Ray processes left just after the driver's SIGKILL: {len(leftover)}")


def assert_complete_epochs(report: Path, planned: set[int]) -> None:
    board = leaderboard(report)
    assert len(board) == len(planned) and board["trial_id"].is_unique, board
    assert set(board["status"]) == {"ok"} and set(board["epochs_run"]) == planned, board


def test_ctrl_c_stops_the_sweep_cleanly_and_prints_a_resume_command_that_works(driver: SweepDriver, tmp_path: Path) -> None:
    report = tmp_path / "results" / "interrupted"
    process = driver.start(*sweep_flags(tmp_path, "interrupted"))
    wait_for(lambda: any(checkpointed_epochs(rows) and rows[-1]["epoch"] <= EPOCHS - MARGIN_EPOCHS
                         for rows in result_rows(report).values()), SWEEP_TIMEOUT_S, "a trial's first checkpoint", process)
    # Found by their temp dir (so the check that they are gone below can fail).
    assert driver.ray_processes()
    stopped = time.monotonic()
    # A terminal's Ctrl-C: SIGINT to the driver's process group.
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=STOP_BOUND_S)
    assert time.monotonic() - stopped < STOP_BOUND_S
    output = driver.output()
    assert process.returncode == 130, output[-4000:]
    # The after-search steps were skipped, and the Ray processes the sweep started are gone.
    assert "Leaderboard of sweep" not in output and "Traceback" not in output, output[-4000:]
    wait_for(lambda: not driver.ray_processes(), STOP_BOUND_S, "the sweep's Ray processes to end")
    lines = output.splitlines()
    command = lines[lines.index("Interrupted: the sweep's state is saved. Resume it with:") + 1].strip()
    assert command == shlex.join(
        ["python", "-m", "search.run", "--resume", "--name", "interrupted", "--storage", str(tmp_path / "results")]
    )

    # The printed command, exactly, resumes it (the space and settings come from the sweep's record).
    resumed = driver.run(*shlex.split(command)[3:], timeout_s=SWEEP_TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    assert_complete(report, trials=2)
    for rows in result_rows(report).values():
        epochs = [row["epoch"] for row in rows]
        assert epochs.count(1) == 1 and epochs[-1] == EPOCHS, epochs


def test_a_second_ctrl_c_stops_at_once(driver: SweepDriver, tmp_path: Path) -> None:
    report = tmp_path / "results" / "twice"
    process = driver.start(*sweep_flags(tmp_path, "twice"))
    # Once Tune has saved the experiment (a trial may not have started yet).
    wait_for(lambda: (report / "tuner.pkl").is_file(), SWEEP_TIMEOUT_S, "the Tune experiment's first state", process)
    assert driver.ray_processes()
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=STOP_BOUND_S)
    output = driver.output()
    assert process.returncode == 130, output[-4000:]
    assert "Second interrupt: stopping now" in output and "--resume --name twice" in output, output[-4000:]
    wait_for(lambda: not driver.ray_processes(), STOP_BOUND_S, "the sweep's Ray processes to end")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_resume_takes_the_recorded_settings_and_space_under_the_flags_given(tmp_path: Path) -> None:
    """No Ray: what `--resume --name X --storage Y` alone will run, from the sweep's record."""
    from search.settings.sweep_config import build_sweep_config
    from search.settings.sweep_record import new_record
    from search.sweep_input import prepare

    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(SPACE))
    storage = tmp_path / "results"
    started = build_sweep_config({}, {"space": str(space_file), "phantom_count": 200, "num_cpus": 1, "seed": 7})
    (storage / "recorded").mkdir(parents=True)
    new_record(started, started.search_space(), "recorded", str(storage / "recorded"), "phantom").write(storage / "recorded")
    # The space file changes after the sweep started: the resumed sweep still searches the recorded space.
    space_file.write_text(yaml.safe_dump({"fixed": {"training.epochs": 1}}))

    resumed = prepare(["--resume", "--name", "recorded", "--storage", str(storage), "--seed", "8"])
    assert resumed.sweep.resume and resumed.sweep.phantom_count == 200 and resumed.sweep.num_cpus == 1
    assert resumed.sweep.seed == 8  # a flag given now wins over the record
    assert resumed.space.parameters.keys() == {"optimizer.lr"} and resumed.space.fixed["training.epochs"] == EPOCHS
