# The official DeiT schedule (facebookresearch/deit main.py) for a total batch of 1024 (8 x 128):
# AdamW, lr 5e-4 * batch / 512, wd 0.05 except 1-D params (norms, biases), pos_embed and the two
# tokens (deit_plugin.StudentOptimWrapperConstructor leaves the teacher out); no gradient
# clipping; 5 warmup epochs from 1e-6 (= lr * 1e-3), then cosine to 1e-5 at epoch 300.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='deit_plugin.StudentOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=5e-4 * 1024 / 512, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)
    ),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.dist_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
        },
    ),
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=5,
        end=300,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
