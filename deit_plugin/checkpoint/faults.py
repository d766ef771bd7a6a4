"""Storage faults around checkpoints: a write the disk refuses, a ``last_checkpoint`` that
names a file which is gone or broken."""
import errno
import glob
import logging
import os
import os.path as osp
import re
import shutil
from typing import List, Optional, Tuple

from mmengine.logging import print_log

from .errors import CheckpointError

#: Names written by (Atomic)CheckpointHook and PreemptionHook: the resumable checkpoints.
_RESUMABLE = re.compile(r'^(epoch|iter)_\d+\.pth$')


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (disk full, I/O error, ...); nothing was replaced."""


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
        fix = 'check the directory\'s permissions and file system'
    return CheckpointWriteError(
        error.errno, f'writing checkpoint {path} failed: {reason}. It needs {nbytes} bytes '
        f'({_human(nbytes)}); {space}. The previous checkpoint and last_checkpoint are '
        f'unchanged and the partial file was removed. Fix: {fix}, then resume with '
        f'`tools/train.py CONFIG --resume`.')


def resumable_checkpoints(work_dir: str) -> List[str]:
    """``epoch_N.pth`` and ``iter_N.pth`` files in ``work_dir``, newest (mtime) first."""
    found = [p for p in glob.glob(osp.join(work_dir, '*.pth'))
             if _RESUMABLE.match(osp.basename(p))]
    return sorted(found, key=lambda p: (osp.getmtime(p), p), reverse=True)


def newest_valid_checkpoint(work_dir: str, exclude: Tuple[str, ...] = ()
                            ) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """The newest resumable checkpoint in ``work_dir`` that passes
    :func:`deit_plugin.checkpoint.check_checkpoint_file`, and the ``(path, reason)`` of
    each newer one it skipped."""
    from .checks import check_checkpoint_file
    skipped = []
    excluded = {osp.abspath(p) for p in exclude}
    for path in resumable_checkpoints(work_dir):
        if osp.abspath(path) in excluded:
            continue
        try:
            check_checkpoint_file(path)
        except (OSError, CheckpointError) as e:
            skipped.append((path, str(e).split(':')[0] if ':' in str(e) else str(e)))
            continue
        return path, skipped
    return None, skipped


def resolve_auto_resume(work_dir: str) -> Optional[str]:
    """What ``--resume`` (auto) continues from.

    ``<work_dir>/last_checkpoint`` when it names a complete checkpoint; when it is missing,
    empty, or names a missing or truncated file, the newest valid ``epoch_N.pth``/``iter_N.pth``
    of the work dir, with a warning naming what was skipped and why; None when there is
    nothing to resume (no pointer and no checkpoint).

    Raises:
        CheckpointError: the pointer is broken and no valid checkpoint is left in the work
            dir (the error about the pointer).
    """
    from .checks import find_resume_checkpoint
    pointer = osp.join(work_dir, 'last_checkpoint')
    try:
        found = find_resume_checkpoint(work_dir)
    except (OSError, CheckpointError) as e:
        with open(pointer) as f:
            target = f.read().strip()
        fallback, skipped = newest_valid_checkpoint(work_dir, exclude=(target, ) if target
                                                    else ())
        if fallback is None:
            raise
        others = ''.join(f'; also skipped {p} ({why})' for p, why in skipped)
        print_log(f'--resume: {pointer} cannot be used ({e}). Resuming from {fallback}, the '
                  f'newest valid checkpoint in the work dir instead{others}.',
                  logger='current', level=logging.WARNING)
        return fallback
    if found is None:
        fallback, skipped = newest_valid_checkpoint(work_dir)
        if fallback is not None:
            others = ''.join(f'; skipped {p} ({why})' for p, why in skipped)
            print_log(f'--resume: {work_dir} has no last_checkpoint file; resuming from '
                      f'{fallback}, its newest valid checkpoint{others}.', logger='current',
                      level=logging.WARNING)
        return fallback
    return found
