# DeiT-S⚗ for ImageNet-1k (224 px, patch 16) with the official recipe's model settings:
# drop-path 0.1, label smoothing 0.1, hard distillation (alpha 0.5), the two heads averaged at
# inference, Mixup 0.8 / CutMix 1.0 and the official initialisation. The teacher is set by the
# full config.
model = dict(
    type='deit_plugin.DistillationClassifier',
    backbone=dict(
        type='deit_plugin.DistilledVisionTransformer',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
    ),
    head=dict(
        type='deit_plugin.DeiTDistillHead',
        num_classes=1000,
        in_channels=384,
        # label smoothing 0.1 on the class head (mixup/cutmix targets folded in)
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        distillation='hard',
        alpha=0.5,
        fusion='mean',
    ),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0),
    ],
    # mixup 0.8 / cutmix 1.0, one of the two per batch (switch prob 0.5)
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)
