"""Command-line pieces shared by the tools."""
import argparse


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 1 (``--threads 0`` was ignored)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a whole number, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
    return value


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 0 (for counts where 0 means all)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a whole number, got {text!r}') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be 0 (all) or more, got {value}')
    return value
