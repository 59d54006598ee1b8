"""Ctrl-C (SIGINT) during a sweep: the first stops it cleanly and says how to resume, a second stops at once.

Inside a Tune run the first Ctrl-C asks Tune for its own graceful stop (the experiment state is saved, running
trials stay resumable from their checkpoints), and the sweep then skips its after-search steps; anywhere else it
raises KeyboardInterrupt where the driver is. Tune's own SIGINT handler is switched off
(TUNE_DISABLE_SIGINT_HANDLER) so this module sees every Ctrl-C and knows the sweep was interrupted.

The state of one sweep's interruption is an `InterruptState`, which `handling()` makes and the driver keeps in its
sweep context. A signal handler belongs to the process, not to an object, so the handler and the callbacks in
Tune's runs reach the state of the sweep being handled through this module (`active()`): a callback Tune
unpickles when it restores a run then still sees the sweep that is running now.
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

from search.tuning._ray_compat import ask_tune_to_stop, tune_stop_handler

# The customary exit status of a program stopped by SIGINT (128 + 2).
INTERRUPTED_EXIT_CODE = 130
TUNE_SIGINT_SETTING = "TUNE_DISABLE_SIGINT_HANDLER"


class SweepInterrupted(Exception):
    """The sweep stopped on Ctrl-C after a Tune run that saved its state."""


def resume_command(name: str, storage: str, report_dir: str | None) -> str:
    words = ["python", "-m", "search.run", "--resume", "--name", name, "--storage", storage]
    if report_dir:
        words += ["--report-dir", report_dir]
    return shlex.join(words)


@dataclass
class InterruptState:
    interrupted: bool = False
    # The command that resumes this sweep, once it has a name (printed if a second Ctrl-C ends the driver).
    resume: str | None = None
    # Tune's stop handlers already asked to stop (Tune installs one per run).
    forwarded: list[object] = field(default_factory=list)
    # Whether the driver is inside tuner.fit(): there the stop is handed to Tune.
    in_tune: bool = False
    # The sweep's Tune experiment: resumable once Tune has saved its state there.
    experiment_path: str | None = None

    def name_sweep(self, name: str, storage: str, report_dir: str | None, experiment_path: str) -> None:
        self.resume = resume_command(name, storage, report_dir)
        self.experiment_path = experiment_path

    def resumable(self) -> str | None:
        """The resume command, if the sweep's search has saved a state to resume from."""
        from ray import tune

        if self.resume is None or self.experiment_path is None:
            return None
        return self.resume if tune.Tuner.can_restore(self.experiment_path) else None

    def forward_to_tune(self) -> None:
        """Tune's own graceful stop, once per Tune run (before Tune has installed its handler, StopOnInterrupt calls
        this again at Tune's next step)."""
        handler = tune_stop_handler()
        if handler is not None and handler is not _on_sigint and not any(handler is seen for seen in self.forwarded):
            self.forwarded.append(handler)
            ask_tune_to_stop(handler)

    @contextlib.contextmanager
    def tune_run(self) -> Iterator[None]:
        """Marks the driver as inside a Tune run; on leaving it, an interrupted sweep raises SweepInterrupted."""
        self.in_tune = True
        try:
            yield
        finally:
            self.in_tune = False
        if self.interrupted:
            raise SweepInterrupted


_ACTIVE = InterruptState()


def active() -> InterruptState:
    """The state of the sweep whose Ctrl-C this process handles now."""
    return _ACTIVE


def print_interrupted(resume: str | None) -> None:
    if resume is None:
        print("\nInterrupted before the search saved any state: run the same command again (the synthetic pool keeps "
              "the images made so far).", file=sys.stderr, flush=True)
    else:
        print(f"\nInterrupted: the sweep's state is saved. Resume it with:\n  {resume}", file=sys.stderr, flush=True)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    state = _ACTIVE
    if state.interrupted:
        print("\nSecond interrupt: stopping now, without saving more.", file=sys.stderr, flush=True)
        try:
            resume = state.resumable()
        except Exception:  # noqa: BLE001 - the storage could not say: the command is still the best advice
            resume = state.resume
        print_interrupted(resume)
        # Ray's local processes share the driver's fate (the kernel ends them with it); nothing else is waited for.
        os._exit(INTERRUPTED_EXIT_CODE)
    state.interrupted = True
    print("\nInterrupt: stopping the sweep and saving its state (Ctrl-C again stops at once) ...", file=sys.stderr, flush=True)
    if not state.in_tune:
        raise KeyboardInterrupt
    state.forward_to_tune()


@contextlib.contextmanager
def handling() -> Iterator[InterruptState]:
    """Ctrl-C handled as above for the block (the driver's main thread), for the sweep state it yields; the
    previous handler comes back after."""
    global _ACTIVE
    previous_handler, previous_setting = signal.getsignal(signal.SIGINT), os.environ.get(TUNE_SIGINT_SETTING)
    _ACTIVE = InterruptState()
    os.environ[TUNE_SIGINT_SETTING] = "1"
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield _ACTIVE
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        if previous_setting is None:
            os.environ.pop(TUNE_SIGINT_SETTING, None)
        else:
            os.environ[TUNE_SIGINT_SETTING] = previous_setting


class StopOnInterrupt(Callback):
    """In every Tune run of the sweep: once Ctrl-C was pressed, asks Tune to stop the way its own Ctrl-C handler
    does, at the start of Tune's next step."""

    def on_step_begin(self, iteration: int, trials: list, **info: object) -> None:
        state = active()
        if state.interrupted:
            state.forward_to_tune()
