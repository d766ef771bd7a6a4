"""The errors of checkpoint handling: one base class, one subclass per kind of problem."""


class CheckpointError(ValueError):
    """A checkpoint file or state dict that cannot be used as given. The message names the file
    (or key) and what to do."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that does not exist."""


class CheckpointTruncatedError(CheckpointError):
    """A checkpoint file ends before its end: the process writing it died."""


class CheckpointUnreadableError(CheckpointError):
    """A file given as checkpoint is not a PyTorch checkpoint, or cannot be read."""


class WrongCheckpointKind(CheckpointError):
    """A readable checkpoint of another kind of model than the one expected."""


class CheckpointWriteError(OSError, CheckpointError):
    """Writing a checkpoint failed (disk full, I/O error, ...); nothing was replaced.

    Also an ``OSError`` with the ``errno`` of the refused write (``OSError`` comes first among
    the bases so that its ``errno`` and message are kept).
    """
