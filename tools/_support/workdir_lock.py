"""One training run per work dir: an advisory lock the operating system releases on exit."""

import os
import os.path as osp
from typing import Optional

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = '.train.lock'


class WorkDirBusyError(RuntimeError):
    """Another live process trains in this work dir."""


class WorkDirLock:
    """Exclusive ``fcntl.flock`` on ``<work_dir>/.train.lock``, holding the owner's PID.

    Two runs writing checkpoints, ``last_checkpoint`` and logs into one work dir corrupt each
    other's resume state. The lock is taken without waiting; a second run gets
    :class:`WorkDirBusyError` naming the holder's PID. The kernel drops the lock when the
    holder's process ends, however it ends (SIGKILL included), so a crashed run never leaves it
    stuck; the file itself stays (its content is only informative).

    Use as a context manager or with :meth:`acquire`/:meth:`release`. Locks on network file
    systems depend on their lock support (NFSv4 supports ``flock``); on systems without
    ``fcntl`` (Windows) nothing is locked.

    Args:
        work_dir (str): The work dir (created if missing).
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = osp.abspath(work_dir)
        self.path = osp.join(self.work_dir, LOCK_NAME)
        self._fd: Optional[int] = None

    def acquire(self) -> 'WorkDirLock':
        if fcntl is None or self._fd is not None:
            return self
        os.makedirs(self.work_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors='replace').strip() or 'unknown'
            os.close(fd)
            raise WorkDirBusyError(
                f'work dir {self.work_dir} is in use by another training run (PID {holder}, '
                f'lock {self.path}): wait for it to finish or stop it, or pass another '
                f'--work-dir.'
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'{os.getpid()}\n'.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
