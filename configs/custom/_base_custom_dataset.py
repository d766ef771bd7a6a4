# Your own images, in mmpretrain's CustomDataset (ImageFolder) layout:
#   <data_root>/train/<class name>/*.jpg|png   <data_root>/val/<class name>/*.jpg|png
# The three settings below are the only place the dataset is described: the teacher
# (resnet50_teacher_ft.py) and the student (deit_s_distill_ft.py) both read them.
data_root = 'data/my_dataset'
num_classes = 10
# Paper §5.3 (transfer, Tables 6-7): fine-tuning at 224 px for the 224 models; images of any
# size are resized/upsampled to it (the patch size stays 16). DeiT-B⚗↑384 fine-tunes at 384.
img_size = 224

data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],  # ImageNet RGB mean/std: both start from ImageNet weights
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)
bgr_mean = data_preprocessor['mean'][::-1]

# Teacher: mmpretrain's fine-tuning pipeline (configs/resnet/resnet50_8xb8_cub.py).
teacher_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
# Student: the ImageNet DeiT pipeline without random erasing (the authors' fine-tuning
# settings, facebookresearch/deit issue #45: "We remove random erasing and stochastic depth.
# All other elements are the same as for training on ImageNet").
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic'),
    ),
    dict(type='PackInputs'),
]
# Evaluation: resize the short side to img_size / 0.875, centre crop (the DeiT eval ratio).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=int(img_size / 0.875),
        edge='short',
        backend='pillow',
        interpolation='bicubic',
    ),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type='CustomDataset', data_root=data_root, data_prefix='train', pipeline=train_pipeline
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type='CustomDataset', data_root=data_root, data_prefix='val', pipeline=test_pipeline
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1,))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
val_cfg = dict()
test_cfg = dict()
