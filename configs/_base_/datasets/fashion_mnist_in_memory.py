# Fashion-MNIST read from the IDX files into memory (deit_plugin.FashionMNISTIdx) instead of
# decoding PNG files per sample; otherwise as fashion_mnist.py (batch sizes, normalisation).
# Train on the training file (`indices=N` keeps its first N images), validate and test on the
# test file. Study v1 (docs/experiments/paper_claims_v1.md).
_base_ = ['./fashion_mnist.py']

train_pipeline = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='deit_plugin.FashionMNISTIdx',
        split='train',
        indices=None,
        pipeline=train_pipeline,
    )
)
val_dataloader = dict(
    dataset=dict(
        _delete_=True, type='deit_plugin.FashionMNISTIdx', split='test', pipeline=test_pipeline
    )
)
test_dataloader = val_dataloader
