from .fashion_mnist_idx import (
    FASHION_MNIST_CLASSES,
    FashionMNISTIdx,
    class_slugs,
    find_fashion_mnist,
    load_fashion_mnist,
    read_idx,
)
from .sample_seeding import (
    SeededBatchAugments,
    batch_seed,
    sample_seed,
    seed_generators,
    seeded_random,
)
from .seeded_dataset import SeededDataset, SeededSampler
from .transforms import GrayAsRGB, RandomErasing

__all__ = [
    'FashionMNISTIdx',
    'FASHION_MNIST_CLASSES',
    'class_slugs',
    'find_fashion_mnist',
    'load_fashion_mnist',
    'read_idx',
    'RandomErasing',
    'GrayAsRGB',
    'SeededBatchAugments',
    'batch_seed',
    'sample_seed',
    'seed_generators',
    'seeded_random',
    'SeededDataset',
    'SeededSampler',
]
