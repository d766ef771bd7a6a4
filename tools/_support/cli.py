"""Command-line pieces shared by the tools."""

import argparse
from typing import Callable


def _int_at_least(minimum: int, meaning: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected a whole number, got {text!r}') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be {meaning}, got {value}')
        return value

    return parse


#: ``argparse`` type: a whole number of at least 1 (``--threads 0`` is refused, not ignored).
positive_int = _int_at_least(1, 'at least 1')
#: ``argparse`` type: a whole number of at least 0 (counts where 0 means all).
non_negative_int = _int_at_least(0, '0 (all) or more')
