# Fashion-MNIST for the paper-claims study (tools/experiments/paper_claims.py): the demo's data
# settings, but read from the IDX files into memory (deit_plugin.FashionMNISTIdx) instead of
# decoding PNG files per sample. `indices=N` keeps the first N training images (the study's
# small-data arm); teacher and student configs both inherit this file, so they see the same data.
_base_ = ['../_base_fashion_mnist.py']

train_pipeline = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='deit_plugin.FashionMNISTIdx', split='train', indices=None,
                 pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='deit_plugin.FashionMNISTIdx', split='test',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
