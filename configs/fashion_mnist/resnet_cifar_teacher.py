# The demo's teacher: mmpretrain's ResNet_CIFAR (depth 18, 16 base channels, 3 stages with
# stride 2) on gray 28x28 Fashion-MNIST. An ordinary mmpretrain classifier config.
_base_ = ['./_base_fashion_mnist.py']

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        in_channels=1,
        base_channels=16,
        num_stages=3,
        strides=(2, 2, 2),
        dilations=(1, 1, 1),  # must have num_stages entries (mmpretrain asserts)
        out_indices=(2, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4,
                                    nesterov=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=2, eta_min=1e-3,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
# channels-last convolutions: faster training steps for this convnet on CPU
custom_hooks = [dict(type='deit_plugin.ChannelsLastHook'),
                dict(type='deit_plugin.RandomStateHook'),
                dict(type='deit_plugin.FiniteLossHook')]
