# The 3-epoch students' teacher: mmpretrain's ResNet_CIFAR (depth 18, 16 base channels, 3
# stages with stride 2) on gray 28x28 Fashion-MNIST, 2 epochs. An ordinary mmpretrain classifier
# config.
_base_ = [
    '../_base_/models/resnet18_cifar_fmnist.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/fashion_mnist_sgd.py',
    '../_base_/cpu_runtime.py',
]

# channels-last convolutions: faster training steps for this convnet on CPU
custom_hooks = [
    dict(type='deit_plugin.ChannelsLastHook'),
    dict(type='deit_plugin.RandomStateHook'),
    dict(type='deit_plugin.FiniteLossHook'),
]
