# A small DeiT⚗ for 28x28 gray images: dim 64, 4 blocks, 4 heads, patch 4 -> 7x7 patches + class
# and distillation tokens; label smoothing 0.1, hard distillation (alpha 0.5), the official
# initialisation. The teacher is set by the full config.
model = dict(
    type='deit_plugin.DistillationClassifier',
    backbone=dict(
        type='deit_plugin.DistilledVisionTransformer',
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256),
        img_size=28,
        patch_size=4,
        in_channels=1,
    ),
    head=dict(
        type='deit_plugin.DeiTDistillHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        distillation='hard',
        alpha=0.5,
    ),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0),
    ],
)
