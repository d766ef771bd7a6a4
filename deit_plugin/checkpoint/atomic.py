"""Checkpoint files that survive a killed process.

mmengine's ``LocalBackend.put`` opens the *final* name and writes to it, so a process killed
during that write leaves a truncated file under the checkpoint's real name.
:class:`AtomicLocalBackend` writes to ``<name>.part`` in the same directory, flushes and fsyncs
it, then ``os.replace``-s it onto the final name (atomic on POSIX and Windows), so a checkpoint
name only ever holds a complete file. ``deit_plugin.AtomicCheckpointHook`` selects this backend.
"""

import errno
import glob
import io
import os
import os.path as osp
import shutil
from typing import Any, Dict, List, Union

import torch
from mmengine.fileio import LocalBackend, register_backend

from .errors import CheckpointWriteError

ATOMIC_BACKEND = 'deit_plugin_atomic_local'
PART_SUFFIX = '.part'


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(data: Union[bytes, str], path: str, encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``<path>.part``, fsync it, then ``os.replace`` it onto ``path``.

    Until the rename, ``path`` keeps its previous content (or does not exist). A failed write
    removes the ``.part`` file and re-raises; a refusal of the storage (disk full, I/O error)
    as :class:`deit_plugin.checkpoint.CheckpointWriteError` naming the bytes needed
    and the free space.

    Args:
        data (bytes | str): What to write.
        path (str): The final file name.
        encoding (str): Encoding of ``str`` data. Defaults to 'utf-8'.
    """
    path = osp.abspath(osp.expanduser(path))
    directory = osp.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = path + PART_SUFFIX
    payload = data.encode(encoding) if isinstance(data, str) else data
    try:
        with open(tmp, 'wb') as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise write_failure(path, len(payload), e) from e
        raise
    _fsync_dir(directory)


def _human(nbytes: float) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(nbytes) < 1024 or unit == 'TiB':
            return f'{nbytes:.0f} {unit}' if unit == 'B' else f'{nbytes:.1f} {unit}'
        nbytes /= 1024
    return ''  # unreachable


def write_failure(path: str, nbytes: int, error: OSError) -> CheckpointWriteError:
    """The error to raise when writing ``nbytes`` to ``path`` failed with ``error`` (the
    partial file already removed): what failed, the bytes needed, the free space, the fix."""
    directory = osp.dirname(osp.abspath(path))
    try:
        free = shutil.disk_usage(directory).free
        space = f'{free} bytes ({_human(free)}) free on its file system'
    except OSError:
        space = 'free space unknown'
    reason = os.strerror(error.errno) if error.errno else str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = 'free space (or raise the quota) there, or set the checkpoint out_dir elsewhere'
    elif error.errno == errno.EIO:
        fix = 'the storage reported an I/O error: check the disk or file server'
    else:
        fix = "check the directory's permissions and file system"
    return CheckpointWriteError(
        error.errno,
        f'writing checkpoint {path} failed: {reason}. It needs {nbytes} bytes '
        f'({_human(nbytes)}); {space}. The previous checkpoint and last_checkpoint are '
        f'unchanged and the partial file was removed. Fix: {fix}, then resume with '
        f'`tools/train.py CONFIG --resume`.',
    )


def write_checkpoint(obj: Dict[str, Any], path: str) -> None:
    """``torch.save`` ``obj`` to ``path`` through :func:`atomic_write`."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(buf.getvalue(), path)


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put``/``put_text`` write through :func:`atomic_write`.

    Registered as the storage backend ``'deit_plugin_atomic_local'`` (select it with
    ``backend_args=dict(backend='deit_plugin_atomic_local')``); reading is ``LocalBackend``'s.
    """

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(obj, str(filepath), encoding=encoding)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def stale_parts(directory: str) -> List[str]:
    """``*.part`` files left in ``directory`` by writes that were killed."""
    return sorted(glob.glob(osp.join(directory, '*' + PART_SUFFIX)))
