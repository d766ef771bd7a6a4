"""Teacher-output cache (TinyViT-style): record the teacher's top-K logits once for the exact
batches of a training run, replay them instead of running the teacher.

See docs/user_guides/teacher_cache.md.
"""

from .reader import CheckStats, TeacherCache, TeacherCacheError
from .recorder import RecordChunk, record_batch, record_teacher, recorded_batches
from .storage import pack_logits, unpack_logits

__all__ = [
    'TeacherCache',
    'TeacherCacheError',
    'CheckStats',
    'record_teacher',
    'record_batch',
    'RecordChunk',
    'recorded_batches',
    'pack_logits',
    'unpack_logits',
]
