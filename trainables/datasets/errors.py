"""The one error every data source raises: what is wrong with the data, naming the file or value."""

from trainables.errors import TrainableInputError


class DatasetError(TrainableInputError):
    """A data source cannot be loaded or is inconsistent; the message names the file or value."""
