"""Ctrl-C (SIGINT) during a sweep: the first stops it cleanly and says how to resume, a second stops at once.

Inside a Tune run the first Ctrl-C asks Tune for its own graceful stop (Tune's SIGUSR1 handler: the experiment
state is saved, running trials stay resumable from their checkpoints), and the sweep then skips its after-search
steps; anywhere else it raises KeyboardInterrupt where the driver is. Tune's own SIGINT handler is switched off
(TUNE_DISABLE_SIGINT_HANDLER) so this module sees every Ctrl-C and knows the sweep was interrupted.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType

from ray.tune import Callback

# The customary exit status of a program stopped by SIGINT (128 + 2).
INTERRUPTED_EXIT_CODE = 130


class SweepInterrupted(Exception):
    """The sweep stopped on Ctrl-C after a Tune run that saved its state."""


@dataclass
class InterruptState:
    interrupted: bool = False
    # The command that resumes this sweep, once it has a name (printed if a second Ctrl-C ends the driver).
    resume: str | None = None
    # Tune's SIGUSR1 handlers already asked to stop (Tune installs one per run).
    forwarded: list[object] = field(default_factory=list)
    # Whether the driver is inside tuner.fit(): there the stop is handed to Tune.
    in_tune: bool = False
    # The sweep's Tune experiment: resumable once Tune has saved its state there.
    experiment_path: str | None = None


STATE = InterruptState()


def resume_command(name: str, storage: str, report_dir: str | None) -> str:
    words = ["python", "-m", "search.run", "--resume", "--name", name, "--storage", storage]
    if report_dir:
        words += ["--report-dir", report_dir]
    return shlex.join(words)


def resumable() -> str | None:
    """The resume command, if the sweep's search has saved a state to resume from."""
    from ray import tune

    if STATE.resume is None or STATE.experiment_path is None:
        return None
    return STATE.resume if tune.Tuner.can_restore(STATE.experiment_path) else None


def print_interrupted(resume: str | None) -> None:
    if resume is None:
        print("\nInterrupted before the search saved any state: run the same command again (the synthetic pool keeps "
              "the images made so far).", file=sys.stderr, flush=True)
    else:
        print(f"\nInterrupted: the sweep's state is saved. Resume it with:\n  {resume}", file=sys.stderr, flush=True)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if STATE.interrupted:
        print("\nSecond interrupt: stopping now, without saving more.", file=sys.stderr, flush=True)
        try:
            resume = resumable()
        except Exception:  # noqa: BLE001 - the storage could not say: the command is still the best advice
            resume = STATE.resume
        print_interrupted(resume)
        # Ray's local processes share the driver's fate (the kernel ends them with it); nothing else is waited for.
        os._exit(INTERRUPTED_EXIT_CODE)
    STATE.interrupted = True
    print("\nInterrupt: stopping the sweep and saving its state (Ctrl-C again stops at once) ...", file=sys.stderr, flush=True)
    if not STATE.in_tune:
        raise KeyboardInterrupt
    forward_to_tune()


def forward_to_tune() -> None:
    """Tune's own graceful stop, once per Tune run: the handler Tune installs for SIGUSR1 while it runs (before it
    has installed one, StopOnInterrupt calls this again at Tune's next step)."""
    handler = signal.getsignal(signal.SIGUSR1)
    if callable(handler) and handler is not _on_sigint and not any(handler is seen for seen in STATE.forwarded):
        STATE.forwarded.append(handler)
        handler(signal.SIGUSR1, None)


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Ctrl-C handled as above for the block (the driver's main thread); the previous handler comes back after."""
    global STATE
    previous_handler, previous_setting = signal.getsignal(signal.SIGINT), os.environ.get(TUNE_SIGINT_SETTING)
    STATE = InterruptState()
    os.environ[TUNE_SIGINT_SETTING] = "1"
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        if previous_setting is None:
            os.environ.pop(TUNE_SIGINT_SETTING, None)
        else:
            os.environ[TUNE_SIGINT_SETTING] = previous_setting


TUNE_SIGINT_SETTING = "TUNE_DISABLE_SIGINT_HANDLER"


class StopOnInterrupt(Callback):
    """In every Tune run of the sweep: once Ctrl-C was pressed, asks Tune to stop the way its own Ctrl-C handler
    does (the handler Tune installs for SIGUSR1 in each run), at the start of Tune's next step."""

    def on_step_begin(self, iteration: int, trials: list, **info: object) -> None:
        if STATE.interrupted:
            forward_to_tune()


class tune_run:  # noqa: N801 - used as `with interrupt.tune_run():`
    """Marks the driver as inside a Tune run; on leaving it, an interrupted sweep raises SweepInterrupted."""

    def __enter__(self) -> None:
        STATE.in_tune = True

    def __exit__(self, *exc: object) -> None:
        STATE.in_tune = False
        if STATE.interrupted and exc[0] is None:
            raise SweepInterrupted
