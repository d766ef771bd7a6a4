# A plain ViT (one class token, no distillation) with the architecture of
# deit_tiny_distilled_fmnist.py (dim 64, 4 blocks, 4 heads, patch 4), trained on the ground
# truth: the study's transformer teacher. Paper Table 2 compares teachers of the student's size
# as well (DeiT-B teaching DeiT-B).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256),
        img_size=28,
        patch_size=4,
        in_channels=1,
        out_type='cls_token',
    ),
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
    ),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0),
    ],
)
