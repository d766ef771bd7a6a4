# The v2 study student (./deit_tiny_student_v2.py) with per-sample seeded data loading: every
# sample's augmentation is seeded by (data seed, epoch, index) and every batch's Mixup/CutMix by
# (data seed, epoch, iteration), so two runs with the same data seed see the same batches
# whatever their model seed (`randomness.seed`), and a resumed run continues the same stream
# (docs/user_guides/resume_and_failures.md). It runs the teacher live;
# ./deit_tiny_student_v2_cached.py replays its outputs from a teacher-output cache recorded for
# this data stream.
_base_ = ['./deit_tiny_student_v2.py']

train_dataloader = dict(
    sampler=dict(
        _delete_=True,
        type='deit_plugin.SeededSampler',
        sampler=dict(type='DefaultSampler', shuffle=True),
    ),
    dataset=dict(
        _delete_=True,
        type='deit_plugin.SeededDataset',
        dataset=dict(
            type='deit_plugin.FashionMNISTIdx',
            split='train',
            index_range=(0, 4500),
            pipeline={{_base_.train_pipeline}},
        ),
    ),
)
custom_hooks = [
    dict(type='deit_plugin.DistillationHook'),
    dict(type='deit_plugin.RandomStateHook'),
    dict(type='deit_plugin.FiniteLossHook'),
    dict(type='deit_plugin.ExactResumeHook'),  # seeds Mixup/CutMix per batch
]
