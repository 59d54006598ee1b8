"""--patient-from-filename: a regular expression whose first group, found in each file's name, is its patient."""

from __future__ import annotations

import re
from collections.abc import Sequence

from trainables.datasets.image_set import DatasetError


def compile_patient_pattern(pattern: str) -> re.Pattern[str]:
    """The --patient-from-filename regular expression, checked once: it must compile and have a group to capture."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise DatasetError(
            f"patient_from_filename {pattern!r} is not a valid regular expression ({error}); e.g. '(person\\d+)_' "
            f"takes 'person12' from 'person12_virus_3.jpeg'"
        ) from error
    if compiled.groups < 1:
        raise DatasetError(
            f"patient_from_filename {pattern!r} has no (group) to capture the patient part of a file name; e.g. '(person\\d+)_'"
        )
    return compiled


def patients_from_file_names(pattern: re.Pattern[str], ids: Sequence[str]) -> list[str]:
    """The first group the pattern captures in each id's file name (else in its whole relative path); a file it
    does not match is an error naming it, since guessing its patient could put one patient on both sides."""
    found: list[str] = []
    for image_id in ids:
        name = image_id.rsplit("/", 1)[-1]
        match = pattern.search(name) or pattern.search(image_id)
        if match is None or not match.group(1):
            raise DatasetError(
                f"patient_from_filename {pattern.pattern!r} does not match '{image_id}', so its patient is unknown; "
                f"change the pattern so that it captures a patient part of every file name"
            )
        found.append(match.group(1))
    return found
