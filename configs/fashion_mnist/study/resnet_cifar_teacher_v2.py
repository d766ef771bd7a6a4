# The study v2 CNN teacher (docs/experiments/paper_claims.md) and `make demo`'s teacher: the
# demo's ResNet_CIFAR-18 trained on the arm's training images with random crop, flip and random
# erasing, validated on the held-out images only (a checkpoint every epoch: the study picks the
# best held-out one, and the earliest one that matches the ViT teacher). The test set is never
# used for choosing.
_base_ = [
    '../../_base_/models/resnet18_cifar_fmnist.py',
    '../../_base_/datasets/fashion_mnist_held_out.py',
    '../../_base_/schedules/fashion_mnist_sgd.py',
    '../../_base_/cpu_runtime.py',
]

param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0,
        end=100,
        eta_min=1e-3,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
# every epoch's checkpoint (the study matches teachers on them) and the best held-out one
# (strictly greater: the earliest on ties)
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=-1, save_best='accuracy/top1', rule='greater')
)
custom_hooks = [
    dict(type='deit_plugin.ChannelsLastHook'),
    dict(type='deit_plugin.RandomStateHook'),
    dict(type='deit_plugin.FiniteLossHook'),
]
