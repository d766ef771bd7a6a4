# Step 1 of "your own dataset": fine-tune an ImageNet-1k ResNet-50 from mmpretrain's model zoo
# (resnet50_8xb32_in1k, 76.55% top-1) on your classes; it becomes the DeiT⚗ student's teacher.
#   wget -P checkpoints https://download.openmmlab.com/mmclassification/v0/resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth  # noqa: E501
#   python tools/train.py configs/custom/resnet50_teacher_ft.py --work-dir work_dirs/custom_teacher
# Schedule: mmpretrain's own fine-tuning recipe (configs/resnet/resnet50_8xb8_cub.py): SGD lr
# 0.01 at batch 64, momentum 0.9, nesterov, wd 5e-4, 5 warmup epochs, cosine, 100 epochs.
_base_ = ['./_base_custom_dataset.py', '../_base_/default_runtime.py']

model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=50, num_stages=4, out_indices=(3,), style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes={{_base_.num_classes}},
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ),
)
# The ImageNet weights come in through load_from, not a backbone init_cfg: the student builds
# this model as its teacher and must not read the ImageNet file again. The 1000-class head does
# not fit and stays initialised (mmengine logs the size mismatch of head.fc).
load_from = 'checkpoints/resnet50_8xb32_in1k_20210831-ea4938fc.pth'

train_dataloader = dict(dataset=dict(pipeline={{_base_.teacher_train_pipeline}}))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True,
    ),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=5, end=100),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
auto_scale_lr = dict(base_batch_size=64)
# keeps only the last checkpoint, epoch_100.pth, which the student's teacher_ckpt names
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1))
