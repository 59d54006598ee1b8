"""Errors raised when a trial's inputs (data, settings) are invalid."""


class TrainableInputError(ValueError):
    """An input to a trial is invalid; the message names the value and what is allowed."""
