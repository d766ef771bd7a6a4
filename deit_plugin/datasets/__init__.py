from .fashion_mnist_idx import FashionMNISTIdx, find_fashion_mnist, read_idx

__all__ = ['FashionMNISTIdx', 'find_fashion_mnist', 'read_idx']
