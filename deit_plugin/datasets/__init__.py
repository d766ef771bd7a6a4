from .fashion_mnist_idx import (FASHION_MNIST_CLASSES, FashionMNISTIdx, class_slugs,
                                find_fashion_mnist, load_fashion_mnist, read_idx)

__all__ = ['FashionMNISTIdx', 'FASHION_MNIST_CLASSES', 'class_slugs', 'find_fashion_mnist',
           'load_fashion_mnist', 'read_idx']
