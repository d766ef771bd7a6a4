# The detection-transfer demo (make demo-det): RetinaNet with the demo's tiny DeiT⚗ backbone
# (dim 64, 4 blocks, 4 heads, patch 4 -> a stride-4 map) and deit_plugin.SimpleFeaturePyramid
# (strides 4, 8, 16, 32) on the generated Fashion-MNIST-on-photos set
# (tools/dataset_converters/fashion_mnist_detection.py: 64x64 RGB, 1-3 objects of 16-32 px).
#
# Initialisation (tools/run_det_demo.py sets it): random (below; the classification student's
# own init) or model.backbone.init_cfg=dict(type='Pretrained', checkpoint=<exported student>,
# prefix='backbone.'). The schedule is identical for both.
#
# Changes from mmdet's RetinaNet, all for 64 px images and a 2-core CPU budget: anchors from
# stride 4 (octave_base_scale 4 -> 16 px), 2 stacked convs of 64 channels in the head instead
# of 4 of 256, AdamW without layer decay (random-init weights would be slowed down by it).
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', '../_base_/det_runtime.py']
custom_imports = dict(imports=['deit_plugin'], allow_failed_imports=False)

classes = (
    't-shirt_top',
    'trouser',
    'pullover',
    'dress',
    'coat',
    'sandal',
    'shirt',
    'sneaker',
    'bag',
    'ankle_boot',
)
img_size = 64
embed_dims = 64
max_epochs = 12

model = dict(
    data_preprocessor=dict(
        # the student's Fashion-MNIST normalisation, on every channel (its gray patch
        # embedding becomes the mean of the three channels: export_backbone --in-channels 3)
        mean=[72.94] * 3,
        std=[90.02] * 3,
        bgr_to_rgb=True,
        pad_size_divisor=32,
    ),
    backbone=dict(
        _delete_=True,
        _scope_='deit_plugin',
        type='DistilledVisionTransformer',
        arch=dict(embed_dims=embed_dims, num_layers=4, num_heads=4, feedforward_channels=256),
        img_size=img_size,
        patch_size=4,
        in_channels=3,
        out_type='featmap',
        out_indices=(3,),
        drop_path_rate=0.1,
        init_cfg=[
            dict(type='TruncNormal', layer='Linear', std=0.02),
            dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0),
        ],
    ),
    neck=dict(
        _delete_=True,
        type='deit_plugin.SimpleFeaturePyramid',
        in_channels=embed_dims,
        out_channels=64,
        scale_factors=(1.0, 0.5, 0.25, 0.125),
        num_outs=4,
    ),
    bbox_head=dict(
        num_classes=len(classes),
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        anchor_generator=dict(octave_base_scale=4, strides=[4, 8, 16, 32]),
    ),
)

data_root = 'data/fmnist_det/'
dataset_type = 'CocoDataset'
metainfo = dict(classes=classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),  # sets scale_factor
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
    ),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric', ann_file=data_root + 'annotations/val.json', metric='bbox', format_only=False
)
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.dist_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
        },
    ),
    clip_grad=dict(max_norm=10.0, norm_type=2),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
