# The demo's DeiT⚗ student (../deit_tiny_distill.py) on in-memory Fashion-MNIST, for the
# paper-claims study. tools/experiments/paper_claims.py sets the distillation mode, alpha, the
# soft loss's tau, the teacher, epochs, seed and subset size on the command line.
_base_ = ['../deit_tiny_distill.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='deit_plugin.FashionMNISTIdx',
        split='train',
        indices=None,
        pipeline=[
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs'),
        ],
    )
)
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='deit_plugin.FashionMNISTIdx',
        split='test',
        pipeline=[dict(type='PackInputs')],
    )
)
test_dataloader = val_dataloader
