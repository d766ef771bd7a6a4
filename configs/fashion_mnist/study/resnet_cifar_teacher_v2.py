# The study v2 CNN teacher (docs/experiments/paper_claims.md) and `make demo`'s teacher: the
# demo's ResNet_CIFAR-18 trained on the arm's training images with random crop, flip and random
# erasing, validated on the held-out images only (a checkpoint every epoch: the study picks the
# best held-out one, and the earliest one that matches the ViT teacher). The test set is never
# used for choosing.
_base_ = ['../resnet_cifar_teacher.py']

pixel_mean, pixel_std = 72.94, 90.02
train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2, pad_val=0),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='deit_plugin.RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=pixel_mean, fill_std=pixel_std),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='deit_plugin.FashionMNISTIdx', split='train',
                 index_range=(0, 4500), pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='deit_plugin.FashionMNISTIdx', split='train',
                 index_range=(4500, 5000), pipeline=[dict(type='PackInputs')]))
test_dataloader = dict(
    dataset=dict(_delete_=True, type='deit_plugin.FashionMNISTIdx', split='test',
                 pipeline=[dict(type='PackInputs')]))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=100, eta_min=1e-3,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
# every epoch's checkpoint (the study matches teachers on them) and the best held-out one
# (strictly greater: the earliest on ties)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1, save_best='accuracy/top1',
                                     rule='greater'))
