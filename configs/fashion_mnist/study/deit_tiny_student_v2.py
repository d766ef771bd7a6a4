# The paper-claims study v2 student (docs/experiments/paper_claims.md) and `make demo`: the small
# DeiT⚗ of ../deit_tiny_distill.py with the DeiT recipe's augmentations sized for 28x28 gray
# images, on in-memory Fashion-MNIST. The study sets the teacher, the distillation mode, epochs,
# seed and image range on the command line.
#
# Recipe (official main.py) -> here: RandomResizedCrop 224 -> RandomCrop 28 with 2 px padding
# (a resized crop of a 28 px image destroys most of it); flip; RandAugment m9-mstd0.5 (timm's
# increasing policies, 2 ops, run on an RGB copy of the gray image); random erasing 0.25 with
# per-pixel noise; Mixup 0.8 / CutMix 1.0 switching per batch with probability 0.5; label
# smoothing 0.1; drop-path 0.1. Not used: repeated augmentation (x3) and EMA (the official
# numbers are those of the non-EMA model).
_base_ = ['../deit_tiny_distill.py']

pixel_mean, pixel_std = 72.94, 90.02  # Fashion-MNIST train-set statistics
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
        fill_color=pixel_mean,
        fill_std=pixel_std,
    ),
    dict(type='PackInputs'),
]
# train on images [0, 4500) of the (shuffled) training file; [4500, 5000) is the held-out part
# used only to select and match teachers
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='deit_plugin.FashionMNISTIdx',
        split='train',
        index_range=(0, 4500),
        pipeline=train_pipeline,
    )
)
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='deit_plugin.FashionMNISTIdx',
        split='test',
        pipeline=[dict(type='PackInputs')],
    )
)
test_dataloader = val_dataloader
model = dict(backbone=dict(drop_path_rate=0.1))
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
train_cfg = dict(by_epoch=True, max_epochs=40, val_interval=4)
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=1))
