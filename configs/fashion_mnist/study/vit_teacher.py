# The study v1 transformer teacher: a plain ViT (one class token, no distillation) with the
# student's architecture (dim 64, 4 blocks, 4 heads, patch 4), trained on the ground truth only,
# with the student's optimizer and schedule shape (../deit_tiny_distill.py); the study sets the
# epochs and the subset size on the command line.
_base_ = [
    '../../_base_/models/vit_tiny_fmnist.py',
    '../../_base_/datasets/fashion_mnist_in_memory.py',
    '../../_base_/schedules/fashion_mnist_adamw.py',
    '../../_base_/cpu_runtime.py',
]

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=6,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=6, val_interval=6)
