# The short 3-epoch student (used by the tests; `make demo` trains study/deit_tiny_student_v2.py,
# which extends this file): a small DeiT⚗ (dim 64, 4 blocks, 4 heads, patch 4 -> 7x7 patches +
# class and distillation tokens) trained with hard distillation from the ResNet_CIFAR teacher of
# resnet_cifar_teacher.py, on the same images. That teacher's checkpoint (teacher_ckpt below) is
# written by `python tools/train.py configs/fashion_mnist/resnet_cifar_teacher.py --work-dir
# work_dirs/demo/teacher`; `make demo` does not write it.
# (The teacher runs channels-last automatically: DistillationClassifier.teacher_channels_last.)
#
# Deviations from the ImageNet recipe (configs/deit_s_distill.py), for a 3-epoch CPU run on
# 28x28 images: lr 2e-3 at batch 128 (the recipe's 5e-4*bs/512 rule gives 1.25e-4, far too low
# for 1,400 steps), warmup 100 iterations, no Mixup/CutMix/RandAugment/erasing/EMA/drop-path.
_base_ = [
    '../_base_/models/deit_tiny_distilled_fmnist.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/fashion_mnist_adamw.py',
    '../_base_/cpu_runtime.py',
]

model = dict(
    teacher='{{fileDirname}}/resnet_cifar_teacher.py',
    teacher_ckpt='work_dirs/demo/teacher/epoch_2.pth',
    predict_with_teacher=True,
)
val_evaluator = [dict(type='Accuracy', topk=(1,)), dict(type='deit_plugin.DistillationMetric')]
test_evaluator = val_evaluator

# the student constructor leaves the teacher out of the optimizer; no decay on the dist token
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='deit_plugin.StudentOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'.dist_token': dict(decay_mult=0.0)}),
)
custom_hooks = [
    dict(type='deit_plugin.DistillationHook'),
    dict(type='deit_plugin.RandomStateHook'),  # exact resume: random states in checkpoints
    dict(type='deit_plugin.FiniteLossHook'),  # stop at a NaN/Inf loss term, before saving
]
