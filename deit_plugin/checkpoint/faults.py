"""What ``--resume`` (auto) continues from when ``last_checkpoint`` names a file which is gone
or broken. (A write the disk refuses is :class:`deit_plugin.checkpoint.CheckpointWriteError`.)"""

import glob
import logging
import os.path as osp
import re
from typing import List, Optional, Tuple

from mmengine.logging import print_log

from .checks import _list_checkpoints, check_checkpoint_file
from .errors import CheckpointError, CheckpointNotFoundError, CheckpointTruncatedError
from .last_checkpoint import last_checkpoint_file, read_last_checkpoint

#: Names written by (Atomic)CheckpointHook and PreemptionHook: the resumable checkpoints.
_RESUMABLE = re.compile(r'^(epoch|iter)_\d+\.pth$')


def resumable_checkpoints(work_dir: str) -> List[str]:
    """``epoch_N.pth`` and ``iter_N.pth`` files in ``work_dir``, newest (mtime) first."""
    found = [p for p in glob.glob(osp.join(work_dir, '*.pth')) if _RESUMABLE.match(osp.basename(p))]
    return sorted(found, key=lambda p: (osp.getmtime(p), p), reverse=True)


def newest_valid_checkpoint(
    work_dir: str, exclude: Tuple[str, ...] = ()
) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """The newest resumable checkpoint in ``work_dir`` that passes
    :func:`deit_plugin.checkpoint.check_checkpoint_file`, and the ``(path, reason)`` of
    each newer one it skipped."""
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


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint that ``--resume`` (auto) should continue from, or None to start fresh.

    mmengine's ``find_latest_checkpoint`` returns whatever ``<work_dir>/last_checkpoint`` holds.
    Here that path is checked (:func:`check_checkpoint_file`): a missing or broken pointer
    target is an error naming both files, never a silent restart.

    Args:
        work_dir (str): The run's work directory.
    """
    pointer = last_checkpoint_file(work_dir)
    target = read_last_checkpoint(work_dir)
    if target is None:
        return None
    if not target:
        raise CheckpointTruncatedError(
            f'{pointer} is empty (the process writing it was killed): resume from a checkpoint '
            f'by path, `--resume <checkpoint>` ({_list_checkpoints(work_dir)}).'
        )
    if not osp.isfile(target) and osp.isfile(osp.join(work_dir, osp.basename(target))):
        raise CheckpointNotFoundError(
            f'{pointer} names {target}, which does not exist, but '
            f'{osp.join(work_dir, osp.basename(target))} does (was the work dir moved?): '
            f'resume with `--resume {osp.join(work_dir, osp.basename(target))}`.'
        )
    check_checkpoint_file(target)
    return target


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
    pointer = last_checkpoint_file(work_dir)
    try:
        found = find_resume_checkpoint(work_dir)
    except (OSError, CheckpointError) as e:
        target = read_last_checkpoint(work_dir)
        fallback, skipped = newest_valid_checkpoint(work_dir, exclude=(target,) if target else ())
        if fallback is None:
            raise
        others = ''.join(f'; also skipped {p} ({why})' for p, why in skipped)
        print_log(
            f'--resume: {pointer} cannot be used ({e}). Resuming from {fallback}, the '
            f'newest valid checkpoint in the work dir instead{others}.',
            logger='current',
            level=logging.WARNING,
        )
        return fallback
    if found is None:
        fallback, skipped = newest_valid_checkpoint(work_dir)
        if fallback is not None:
            others = ''.join(f'; skipped {p} ({why})' for p, why in skipped)
            print_log(
                f'--resume: {work_dir} has no last_checkpoint file; resuming from '
                f'{fallback}, its newest valid checkpoint{others}.',
                logger='current',
                level=logging.WARNING,
            )
        return fallback
    return found
