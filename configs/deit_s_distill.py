# DeiT-S⚗ (hard distillation through the distillation token) on ImageNet-1k: the official
# recipe (facebookresearch/deit main.py), with a RegNetY-16GF teacher. Published: 81.2% top-1.
#   python tools/train.py configs/deit_s_distill.py        (8 processes: tools/dist_train.sh)
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['deit_plugin'], allow_failed_imports=False)

model = dict(
    type='deit_plugin.DistillationClassifier',
    backbone=dict(
        type='deit_plugin.DistilledVisionTransformer',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1),
    head=dict(
        type='deit_plugin.DeiTDistillHead',
        num_classes=1000,
        in_channels=384,
        # label smoothing 0.1 on the class head (mixup/cutmix targets folded in)
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        distillation='hard',
        alpha=0.5,
        fusion='mean'),
    teacher='{{fileDirname}}/teachers/regnety_160.py',
    teacher_ckpt='checkpoints/regnety_160-a5fe301d.pth',
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=.02),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
    ],
    # mixup 0.8 / cutmix 1.0, one of the two per batch (switch prob 0.5)
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)

# RandAugment m9-mstd0.5-inc1 (bicubic), random erasing 0.25 in pixel mode, eval resize
# 224/0.875 = 256 bicubic + center crop: all in the inherited mmpretrain pipelines.
# Repeated augmentation x3 (official RASampler).
train_dataloader = dict(batch_size=128, sampler=dict(type='RepeatAugSampler', num_repeats=3,
                                                     shuffle=True, _scope_='mmpretrain'))
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='deit_plugin.DistillationMetric')]
test_evaluator = val_evaluator

# AdamW, lr 5e-4 * batch / 512 (1e-3 at 8 x 128), wd 0.05 except 1-D params (norms, biases),
# pos_embed and the two tokens; no gradient clipping.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='deit_plugin.StudentOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=5e-4 * 1024 / 512, weight_decay=0.05, eps=1e-8,
                   betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.dist_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
        }),
)
# 5 warmup epochs from 1e-6 (= lr * 1e-3), then cosine to 1e-5 at epoch 300.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5, end=300,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)

custom_hooks = [
    dict(type='deit_plugin.DistillationHook'),
    # official model EMA, decay 0.99996 per iteration
    dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL'),
    dict(type='deit_plugin.RandomStateHook'),  # exact resume: random states in checkpoints
    dict(type='deit_plugin.FiniteLossHook'),  # stop at a NaN/Inf loss term, before saving
]
# checkpoints written to a temporary name, then renamed: a killed run never leaves a broken one
default_hooks = dict(checkpoint=dict(type='deit_plugin.AtomicCheckpointHook'))
