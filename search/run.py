"""`python -m search.run`: one command for the whole study, as a Ray Tune sweep, ending with its leaderboard.

A sweep is its stages (search.stages), in order; this module runs them and turns what a user can get wrong into
one line and exit status 2, and Ctrl-C into a clean stop with the command that resumes it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence

from generators import GeneratorError
from search import stages
from search.report.upload import upload_report
from search.settings.locations import is_uri
from search.stages import SweepOutputs
from search.sweep_input import PreparedSweep, prepare
from search.tuning import interrupt
from search.tuning.connection import shut_down_ray
from spaces import ConfigError
from trainables.errors import TrainableInputError


def run_sweep(prepared: PreparedSweep, interrupt_state: interrupt.InterruptState | None = None) -> SweepOutputs:
    context = stages.start(prepared, interrupt_state or interrupt.InterruptState())
    stages.search(context)
    stages.twins(context)
    if not stages.answer(context):
        return context.outputs()
    stages.finalists(context)
    stages.diagnostics(context)
    return stages.report(context)


# Every error a user can cause with their input or their files: one clean line and exit code 2.
EXPECTED_ERRORS = (ConfigError, GeneratorError, TrainableInputError)


def error_message(error: BaseException) -> str:
    # An error raised inside a Ray actor or task arrives wrapped with the remote traceback; the cause says it all.
    return str(getattr(error, "cause", None) or error)


def main(argv: Sequence[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():
        # Signal handlers can only be set from the main thread: a sweep run from another has no Ctrl-C handling.
        return run_main(argv, interrupt.InterruptState())
    with interrupt.handling() as interrupt_state:
        return run_main(argv, interrupt_state)


def run_main(argv: Sequence[str] | None, interrupt_state: interrupt.InterruptState) -> int:
    try:
        prepared = prepare(argv)
        print(prepared.dataset.describe())
        outputs = run_sweep(prepared, interrupt_state)
        if is_uri(prepared.sweep.storage):
            print(f"  report copied to {upload_report(outputs.report_dir, outputs.experiment_path)}")
    except EXPECTED_ERRORS as error:
        print(f"error: {error_message(error)}", file=sys.stderr)
        return 2
    except (interrupt.SweepInterrupted, KeyboardInterrupt):
        interrupt.print_interrupted(interrupt_state.resumable())
        shut_down_ray()
        return interrupt.INTERRUPTED_EXIT_CODE
    return 0 if outputs.trials_finished > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
