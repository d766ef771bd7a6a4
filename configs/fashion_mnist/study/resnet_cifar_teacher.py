# The demo's CNN teacher (ResNet_CIFAR-18, 16 base channels) on in-memory Fashion-MNIST, for the
# paper-claims study v1. Same model, optimizer and schedule as ../resnet_cifar_teacher.py; the
# study sets max_epochs and the subset size on the command line.
_base_ = [
    '../../_base_/models/resnet18_cifar_fmnist.py',
    '../../_base_/datasets/fashion_mnist_in_memory.py',
    '../../_base_/schedules/fashion_mnist_sgd.py',
    '../../_base_/cpu_runtime.py',
]

custom_hooks = [
    dict(type='deit_plugin.ChannelsLastHook'),
    dict(type='deit_plugin.RandomStateHook'),
    dict(type='deit_plugin.FiniteLossHook'),
]
