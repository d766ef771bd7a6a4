# The v2 study student trained from a teacher-output cache (docs/user_guides/teacher_cache.md):
# the same model, augmentations and Mixup/CutMix, with per-sample seeded data loading, so that
# `tools/record_teacher.py` can record the teacher's outputs for exactly the batches of this
# run and the run replays them instead of running the teacher.
#
#   python tools/record_teacher.py configs/fashion_mnist/study/deit_tiny_student_v2_cached.py \
#       --epochs 40 --out work_dirs/teacher_cache/v2
#   python tools/train.py configs/fashion_mnist/study/deit_tiny_student_v2_cached.py
_base_ = ['./deit_tiny_student_v2.py']

model = dict(teacher_cache=dict(dir='work_dirs/teacher_cache/v2', check_fraction=0.0))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='deit_plugin.SeededSampler',
                 sampler=dict(type='DefaultSampler', shuffle=True)),
    dataset=dict(_delete_=True, type='deit_plugin.SeededDataset',
                 dataset=dict(type='deit_plugin.FashionMNISTIdx', split='train',
                              index_range=(0, 4500), pipeline={{_base_.train_pipeline}})))
custom_hooks = [
    dict(type='deit_plugin.DistillationHook'),
    dict(type='deit_plugin.RandomStateHook'),
    dict(type='deit_plugin.FiniteLossHook'),
    dict(type='deit_plugin.ExactResumeHook'),  # seeds Mixup/CutMix per batch, as recorded
    dict(type='deit_plugin.TeacherCacheHook'),
]
