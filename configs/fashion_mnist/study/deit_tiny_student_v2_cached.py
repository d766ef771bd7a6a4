# The v2 study student trained from a teacher-output cache (docs/user_guides/teacher_cache.md):
# ./deit_tiny_student_v2_seeded.py (same model, augmentations and Mixup/CutMix, per-sample
# seeded data loading), with the teacher's outputs read from a cache that
# `tools/record_teacher.py` recorded for exactly the batches of this run instead of running the
# teacher.
#
#   python tools/record_teacher.py configs/fashion_mnist/study/deit_tiny_student_v2_cached.py \
#       --epochs 40 --out work_dirs/teacher_cache/v2
#   python tools/train.py configs/fashion_mnist/study/deit_tiny_student_v2_cached.py
_base_ = ['./deit_tiny_student_v2_seeded.py']

model = dict(teacher_cache=dict(dir='work_dirs/teacher_cache/v2', check_fraction=0.0))
custom_hooks = [
    dict(type='deit_plugin.DistillationHook'),
    dict(type='deit_plugin.RandomStateHook'),
    dict(type='deit_plugin.FiniteLossHook'),
    dict(type='deit_plugin.ExactResumeHook'),  # seeds Mixup/CutMix per batch, as recorded
    dict(type='deit_plugin.TeacherCacheHook'),
]
