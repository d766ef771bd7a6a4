# DeiT-S⚗ (hard distillation through the distillation token) on ImageNet-1k: the official
# recipe (facebookresearch/deit main.py), with a RegNetY-16GF teacher. Published: 81.2% top-1.
#   python tools/train.py configs/deit_s_distill.py        (8 processes: tools/dist_train.sh)
_base_ = [
    './_base_/models/deit_small_distilled.py',
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    './_base_/schedules/imagenet_bs1024_adamw_deit.py',
    './_base_/default_runtime.py',
]

model = dict(
    teacher='{{fileDirname}}/teachers/regnety_160.py',
    teacher_ckpt='checkpoints/regnety_160-a5fe301d.pth',
)

# RandAugment m9-mstd0.5-inc1 (bicubic), random erasing 0.25 in pixel mode, eval resize
# 224/0.875 = 256 bicubic + center crop: all in the inherited mmpretrain pipelines.
# Repeated augmentation x3 (official RASampler).
train_dataloader = dict(
    batch_size=128,
    sampler=dict(type='RepeatAugSampler', num_repeats=3, shuffle=True, _scope_='mmpretrain'),
)
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='deit_plugin.DistillationMetric')]
test_evaluator = val_evaluator

custom_hooks = [
    dict(type='deit_plugin.DistillationHook'),
    # official model EMA, decay 0.99996 per iteration
    dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL'),
]
