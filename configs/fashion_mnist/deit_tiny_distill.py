# The demo's student: a small DeiT⚗ (dim 64, 4 blocks, 4 heads, patch 4 -> 7x7 patches + class
# and distillation tokens) trained with hard distillation from the ResNet_CIFAR teacher of
# resnet_cifar_teacher.py, on the same images.
# (The teacher runs channels-last automatically: DistillationClassifier.teacher_channels_last.)
#
# Deviations from the ImageNet recipe (configs/deit_s_distill.py), for a 3-epoch CPU run on
# 28x28 images: lr 2e-3 at batch 128 (the recipe's 5e-4*bs/512 rule gives 1.25e-4, far too low
# for 1,400 steps), warmup 100 iterations, no Mixup/CutMix/RandAugment/erasing/EMA/drop-path.
_base_ = ['./_base_fashion_mnist.py']

model = dict(
    type='deit_plugin.DistillationClassifier',
    backbone=dict(
        type='deit_plugin.DistilledVisionTransformer',
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256),
        img_size=28,
        patch_size=4,
        in_channels=1),
    head=dict(
        type='deit_plugin.DeiTDistillHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        distillation='hard',
        alpha=0.5),
    teacher='{{fileDirname}}/resnet_cifar_teacher.py',
    teacher_ckpt='work_dirs/demo/teacher/epoch_2.pth',
    predict_with_teacher=True,
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=.02),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
    ],
)
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='deit_plugin.DistillationMetric')]
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    constructor='deit_plugin.StudentOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
        custom_keys={'.cls_token': dict(decay_mult=0.0), '.dist_token': dict(decay_mult=0.0),
                     '.pos_embed': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, end=3,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=3)
custom_hooks = [
    dict(type='deit_plugin.DistillationHook'),
    dict(type='deit_plugin.RandomStateHook'),  # exact resume: random states in checkpoints
    dict(type='deit_plugin.FiniteLossHook'),  # stop at a NaN/Inf loss term, before saving
]
