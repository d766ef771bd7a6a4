# The study v2 transformer teacher (docs/experiments/paper_claims.md, claim (c)): a plain ViT
# with the student's architecture and one class token, trained on the ground truth with the
# student's recipe (deit_tiny_student_v2.py: same augmentations, optimizer and schedule shape),
# validated on the held-out images only, a checkpoint every epoch.
_base_ = ['./deit_tiny_student_v2.py']

model = dict(
    _delete_=True,
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256),
        img_size=28,
        patch_size=4,
        in_channels=1,
        drop_path_rate=0.1,
        out_type='cls_token'),
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=.02),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
    ],
)
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
        custom_keys={'.cls_token': dict(decay_mult=0.0), '.pos_embed': dict(decay_mult=0.0)}),
)
val_dataloader = dict(
    dataset=dict(_delete_=True, type='deit_plugin.FashionMNISTIdx', split='train',
                 index_range=(4500, 5000), pipeline=[dict(type='PackInputs')]))
test_dataloader = dict(
    dataset=dict(_delete_=True, type='deit_plugin.FashionMNISTIdx', split='test',
                 pipeline=[dict(type='PackInputs')]))
val_evaluator = dict(_delete_=True, type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
# every epoch's checkpoint (the study matches teachers on them) and the best held-out one
# (strictly greater: the earliest on ties)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1, save_best='accuracy/top1',
                                     rule='greater'))
custom_hooks = [dict(type='deit_plugin.RandomStateHook'), dict(type='deit_plugin.FiniteLossHook')]
