# The study v2 transformer teacher (docs/experiments/paper_claims.md, claim (c)): a plain ViT
# with the student's architecture and one class token, trained on the ground truth with the
# student's recipe (deit_tiny_student_v2.py: same augmentations, optimizer and schedule shape;
# tests/test_configs_and_docs/test_configs_load.py checks that the two agree), validated on the
# held-out images only, a checkpoint every epoch.
_base_ = [
    '../../_base_/models/vit_tiny_fmnist.py',
    '../../_base_/datasets/fashion_mnist_held_out.py',
    '../../_base_/schedules/fashion_mnist_adamw.py',
    '../../_base_/cpu_runtime.py',
]

model = dict(backbone=dict(drop_path_rate=0.1))
# the student's augmentations (deit_tiny_student_v2.py)
data_preprocessor = dict(
    batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)])
)
train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2, pad_val=0),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    # mmpretrain's RandAugment indexes three channels (Equalize): run it on an RGB copy
    dict(
        type='deit_plugin.GrayAsRGB',
        transforms=[
            dict(
                type='RandAugment',
                policies='timm_increasing',
                num_policies=2,
                total_level=10,
                magnitude_level=9,
                magnitude_std=0.5,
                hparams=dict(pad_val=0, interpolation='bicubic'),
            )
        ],
    ),
    dict(
        type='deit_plugin.RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color={{_base_.pixel_mean}},
        fill_std={{_base_.pixel_std}},
    ),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=40,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
# every epoch's checkpoint (the study matches teachers on them) and the best held-out one
# (strictly greater: the earliest on ties)
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=-1, save_best='accuracy/top1', rule='greater')
)
custom_hooks = [dict(type='deit_plugin.RandomStateHook'), dict(type='deit_plugin.FiniteLossHook')]
