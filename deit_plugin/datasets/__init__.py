from .fashion_mnist_idx import FashionMNISTIdx, find_fashion_mnist, read_idx
from .sample_seeding import SeededBatchAugments, batch_seed, sample_seed, seeded_random
from .seeded_dataset import SeededDataset, SeededSampler

__all__ = [
    'FashionMNISTIdx', 'find_fashion_mnist', 'read_idx', 'SeededBatchAugments', 'batch_seed',
    'sample_seed', 'seeded_random', 'SeededDataset', 'SeededSampler'
]
