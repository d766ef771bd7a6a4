"""Checkpoint files and state dicts: atomic writes, checked reads, kind detection, strict
loading, the ``last_checkpoint`` pointer, and loading mmengine Runner checkpoints under
torch>=2.6 (``weights_only``).

Every error raised here is a :class:`CheckpointError` (a ``ValueError``).
"""

from .atomic import (
    ATOMIC_BACKEND,
    PART_SUFFIX,
    AtomicLocalBackend,
    atomic_write,
    stale_parts,
    write_checkpoint,
)
from .checks import (
    check_checkpoint_file,
    checked_loader,
    install_checkpoint_file_checks,
    read_checkpoint,
)
from .compat import allow_mmengine_checkpoint_globals, mmengine_checkpoint_globals
from .errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointTruncatedError,
    CheckpointUnreadableError,
    CheckpointWriteError,
    WrongCheckpointKind,
)
from .faults import find_resume_checkpoint, resolve_auto_resume
from .kind import (
    DEFAULT_REVISE_KEYS,
    CheckpointKind,
    checkpoint_kind,
    revise_keys,
    unwrap_state_dict,
)
from .last_checkpoint import (
    LAST_CHECKPOINT,
    has_last_checkpoint,
    last_checkpoint_file,
    read_last_checkpoint,
    write_last_checkpoint,
)
from .published import check_published, publish_checkpoint, sha256_of
from .strict import load_checkpoint_strictly, load_state_dict_strictly

__all__ = [
    'ATOMIC_BACKEND',
    'PART_SUFFIX',
    'AtomicLocalBackend',
    'atomic_write',
    'stale_parts',
    'write_checkpoint',
    'check_checkpoint_file',
    'checked_loader',
    'find_resume_checkpoint',
    'resolve_auto_resume',
    'install_checkpoint_file_checks',
    'read_checkpoint',
    'allow_mmengine_checkpoint_globals',
    'mmengine_checkpoint_globals',
    'CheckpointError',
    'CheckpointNotFoundError',
    'CheckpointTruncatedError',
    'CheckpointUnreadableError',
    'CheckpointWriteError',
    'WrongCheckpointKind',
    'DEFAULT_REVISE_KEYS',
    'CheckpointKind',
    'checkpoint_kind',
    'revise_keys',
    'unwrap_state_dict',
    'LAST_CHECKPOINT',
    'has_last_checkpoint',
    'last_checkpoint_file',
    'read_last_checkpoint',
    'write_last_checkpoint',
    'check_published',
    'publish_checkpoint',
    'sha256_of',
    'load_checkpoint_strictly',
    'load_state_dict_strictly',
]
