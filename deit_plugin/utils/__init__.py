"""Helpers shared by the package, the tools and the tests."""
from .cli import non_negative_int, positive_int
from .config import model_with_data_preprocessor
from .logs import find_scalars, read_resumed_scalars, read_scalars
from .runs import last_checkpoint, run_logged

__all__ = ['model_with_data_preprocessor', 'find_scalars', 'read_scalars',
           'read_resumed_scalars', 'last_checkpoint', 'run_logged', 'positive_int',
           'non_negative_int']
