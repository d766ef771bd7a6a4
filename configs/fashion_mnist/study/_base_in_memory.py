# Fashion-MNIST for the paper-claims study (tools/experiments/paper_claims.py): the demo's data
# settings, but read from the IDX files into memory (deit_plugin.FashionMNISTIdx) instead of
# decoding PNG files per sample. `indices=N` keeps the first N training images (the study's
# small-data arm). vit_teacher.py inherits this file; deit_tiny_student.py and
# resnet_cifar_teacher.py inherit the demo configs and repeat these data settings (mmengine
# refuses a key such as train_dataloader defined in two bases), so all three see the same data.
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
