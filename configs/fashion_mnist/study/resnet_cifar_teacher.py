# The demo's CNN teacher (ResNet_CIFAR-18, 16 base channels) on in-memory Fashion-MNIST, for the
# paper-claims study. Same model, optimizer and schedule as ../resnet_cifar_teacher.py; the study
# sets max_epochs and the subset size on the command line.
_base_ = ['../resnet_cifar_teacher.py']

train_dataloader = dict(
    dataset=dict(_delete_=True, type='deit_plugin.FashionMNISTIdx', split='train', indices=None,
                 pipeline=[dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                           dict(type='PackInputs')]))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='deit_plugin.FashionMNISTIdx', split='test',
                 pipeline=[dict(type='PackInputs')]))
test_dataloader = val_dataloader
