# The transformers' schedule on Fashion-MNIST at batch 128: AdamW lr 2e-3, wd 0.05 except 1-D
# params (norms, biases), the class token and pos_embed; 100 warmup iterations from lr * 1e-3,
# then cosine to 1e-5 over 3 epochs. (The ImageNet rule 5e-4 * bs / 512 gives 1.25e-4, far too
# low for a few thousand steps.) A DeiT⚗ student adds its distillation token and the student
# constructor (../../fashion_mnist/deit_tiny_distill.py).
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={'.cls_token': dict(decay_mult=0.0), '.pos_embed': dict(decay_mult=0.0)},
    ),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=3,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=3)
val_cfg = dict()
test_cfg = dict()
