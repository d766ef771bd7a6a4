# Fashion-MNIST (28x28 gray, 10 classes) in mmpretrain's CustomDataset layout, as written by
# tools/dataset_converters/fashion_mnist_to_custom.py: train on data/fashion_mnist/train,
# validate and test on data/fashion_mnist/test.
data_root = 'data/fashion_mnist'
data_preprocessor = dict(
    num_classes=10,
    mean=[72.94],  # Fashion-MNIST train-set pixel mean / std
    std=[90.02],
    to_rgb=False,
)
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,
    num_workers=0,  # dataloader workers slow this tiny pipeline down on 2 cores
    # stated, because mmpretrain's own tools/train.py defaults it to True, which PyTorch
    # refuses without workers; with num_workers > 0 set it to True for speed
    persistent_workers=False,
    dataset=dict(
        type='CustomDataset', data_root=data_root, data_prefix='train', pipeline=train_pipeline
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='CustomDataset', data_root=data_root, data_prefix='test', pipeline=test_pipeline
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1,))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
