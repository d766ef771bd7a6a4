from .fashion_mnist_idx import FashionMNISTIdx, find_fashion_mnist, read_idx
from .transforms import GrayAsRGB, RandomErasing

__all__ = ['FashionMNISTIdx', 'find_fashion_mnist', 'read_idx', 'RandomErasing', 'GrayAsRGB']
