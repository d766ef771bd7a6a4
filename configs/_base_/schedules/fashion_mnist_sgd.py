# The CNN teacher's schedule on Fashion-MNIST at batch 128: SGD lr 0.1, momentum 0.9, nesterov,
# wd 5e-4; 100 warmup iterations from lr * 0.1, then cosine to 1e-3 over 2 epochs.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0,
        end=2,
        eta_min=1e-3,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
val_cfg = dict()
test_cfg = dict()
