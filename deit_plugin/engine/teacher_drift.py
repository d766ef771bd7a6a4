"""A resumed student must keep learning from the teacher it started with."""
from typing import Optional


class TeacherChangedError(RuntimeError):
    """The teacher checkpoint of a resumed run differs from the one the student was trained
    with."""


def check_teacher_drift(recorded: Optional[dict], student_ckpt: str, teacher_ckpt: str,
                        fingerprint: str, allow: bool, logger=None) -> None:
    """Compare the teacher recorded in a student checkpoint's ``meta['deit_plugin']`` with
    the teacher loaded now.

    Args:
        recorded (dict, optional): ``meta['deit_plugin']`` of the student checkpoint
            (``teacher_ckpt``, ``teacher_fingerprint``); None or without a fingerprint
            (written by an older version): nothing to compare.
        student_ckpt (str): The student checkpoint resumed from (for the message).
        teacher_ckpt (str): The teacher checkpoint loaded now.
        fingerprint (str): Its :func:`~deit_plugin.engine.distillation_hook.teacher_fingerprint`.
        allow (bool): Only warn (``DistillationHook(allow_teacher_change=True)``,
            ``tools/train.py --allow-teacher-change``).
        logger: Where the warning goes. Defaults to None (no warning).

    Raises:
        TeacherChangedError: the fingerprints differ and ``allow`` is False.
    """
    before = (recorded or {}).get('teacher_fingerprint')
    if before is None or before == fingerprint:
        return
    message = (f'the teacher differs from the one the resumed student was trained with: '
               f'{student_ckpt} records teacher {recorded.get("teacher_ckpt")} with fingerprint '
               f'{before}; this run loaded {teacher_ckpt} with fingerprint {fingerprint}.')
    if not allow:
        raise TeacherChangedError(
            message + ' The student would continue against other targets than it started '
            'with. Fix: set model.teacher_ckpt to the original teacher checkpoint; if the '
            'change is intended, pass --allow-teacher-change to tools/train.py (or '
            'DistillationHook(allow_teacher_change=True)).')
    if logger is not None:
        logger.warning(message + ' Continuing: allow_teacher_change=True.')
