# The study v2 split of in-memory Fashion-MNIST (docs/experiments/paper_claims.md): train on
# images [0, 4500) of the (shuffled) training file, validate on the held-out images [4500, 5000)
# (used only to select and match teachers), test on the test file. Augmentations: random crop
# with 2 px padding, flip and random erasing 0.25 with per-pixel noise.
_base_ = ['./fashion_mnist.py']

pixel_mean, pixel_std = 72.94, 90.02  # Fashion-MNIST train-set statistics
train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2, pad_val=0),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='deit_plugin.RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=pixel_mean,
        fill_std=pixel_std,
    ),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='deit_plugin.FashionMNISTIdx',
        split='train',
        index_range=(0, 4500),
        pipeline=train_pipeline,
    )
)
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='deit_plugin.FashionMNISTIdx',
        split='train',
        index_range=(4500, 5000),
        pipeline=[dict(type='PackInputs')],
    )
)
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='deit_plugin.FashionMNISTIdx',
        split='test',
        pipeline=[dict(type='PackInputs')],
    )
)
