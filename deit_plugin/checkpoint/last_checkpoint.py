"""mmengine's ``<work_dir>/last_checkpoint``: the file naming the checkpoint to resume from.

mmengine's ``CheckpointHook`` writes it after each save and ``Runner.resume`` (``resume=True``
without ``load_from``) follows it. Every part of the plugin, the tools and the drivers that reads
or writes it goes through these functions.
"""

import os.path as osp
from typing import Optional

from .atomic import atomic_write

#: The name mmengine gives the pointer file (``mmengine/runner/checkpoint.py``
#: ``find_latest_checkpoint``, ``mmengine/hooks/checkpoint_hook.py``).
LAST_CHECKPOINT = 'last_checkpoint'


def last_checkpoint_file(work_dir: str) -> str:
    """The path of ``work_dir``'s pointer file (which may not exist)."""
    return osp.join(work_dir, LAST_CHECKPOINT)


def has_last_checkpoint(work_dir: str) -> bool:
    """Whether ``work_dir`` has a pointer file (a run that saved a checkpoint)."""
    return osp.isfile(last_checkpoint_file(work_dir))


def read_last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint path ``work_dir``'s pointer names, as written (mmengine writes absolute
    paths); ``''`` for an empty pointer (its writer was killed), None when there is none."""
    pointer = last_checkpoint_file(work_dir)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        return f.read().strip()


def write_last_checkpoint(work_dir: str, checkpoint: str) -> None:
    """Point ``work_dir``'s pointer at ``checkpoint``, atomically (never an empty or half-written
    pointer, whenever the process dies)."""
    atomic_write(str(checkpoint), last_checkpoint_file(work_dir))
