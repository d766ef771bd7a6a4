"""Checkpoint files and state dicts: atomic writes, checked reads, kind detection, and loading
mmengine Runner checkpoints under torch>=2.6 (``weights_only``).

Every error raised here is a :class:`CheckpointError` (a ``ValueError``).
"""
from .atomic import (ATOMIC_BACKEND, PART_SUFFIX, AtomicLocalBackend, atomic_write,
                     stale_parts, write_checkpoint)
from .checks import (check_checkpoint_file, checked_loader, find_resume_checkpoint,
                     install_checkpoint_file_checks, read_checkpoint)
from .compat import allow_mmengine_checkpoint_globals, mmengine_checkpoint_globals
from .errors import (CheckpointError, CheckpointNotFoundError, CheckpointTruncatedError,
                     CheckpointUnreadableError, WrongCheckpointKind)
from .published import check_published, publish_checkpoint, sha256_of
from .kind import (DEFAULT_REVISE_KEYS, CheckpointKind, checkpoint_kind, revise_keys,
                   unwrap_state_dict)

__all__ = [
    'ATOMIC_BACKEND', 'PART_SUFFIX', 'AtomicLocalBackend', 'atomic_write', 'stale_parts',
    'write_checkpoint', 'check_checkpoint_file', 'checked_loader', 'find_resume_checkpoint',
    'install_checkpoint_file_checks', 'read_checkpoint', 'allow_mmengine_checkpoint_globals',
    'mmengine_checkpoint_globals', 'CheckpointError', 'CheckpointNotFoundError',
    'CheckpointTruncatedError', 'CheckpointUnreadableError', 'WrongCheckpointKind',
    'DEFAULT_REVISE_KEYS', 'CheckpointKind', 'checkpoint_kind', 'revise_keys',
    'unwrap_state_dict', 'check_published', 'publish_checkpoint', 'sha256_of'
]
