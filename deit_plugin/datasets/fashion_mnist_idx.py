"""Fashion-MNIST read straight from its IDX files into memory (no PNG decoding per sample)."""

import gzip
import os
import os.path as osp
import struct
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from mmpretrain.datasets import BaseDataset

from deit_plugin.registry import DATASETS

FASHION_MNIST_CLASSES = (
    'T-shirt/top',
    'Trouser',
    'Pullover',
    'Dress',
    'Coat',
    'Sandal',
    'Shirt',
    'Sneaker',
    'Bag',
    'Ankle boot',
)
_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
_SEARCHED = (
    '$DEIT_FASHION_MNIST_DIR',
    '/usr/share/datasets/fashion-mnist',
    '~/.cache/deit_plugin/fmnist/usr/share/datasets/fashion-mnist',
)


def read_idx(path: str) -> np.ndarray:
    """Read a uint8 IDX file (``.gz`` or not): big-endian magic, one uint32 per dimension, data.

    Args:
        path (str): The file.

    Returns:
        np.ndarray: The array, shaped as the header says.
    """
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 4:
        raise ValueError(f'{path} is not an IDX file (too short).')
    zero, dtype_code, ndim = struct.unpack('>HBB', raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f'{path} is not a uint8 IDX file (magic {raw[:4].hex()}).')
    dims = struct.unpack(f'>{ndim}I', raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(
            f'{path}: the header says {dims}, the file holds {data.size} values '
            f'(truncated download?).'
        )
    return data.reshape(dims)


def _find(folder: str, name: str) -> Optional[str]:
    for candidate in (osp.join(folder, name + '.gz'), osp.join(folder, name)):
        if osp.isfile(candidate):
            return candidate
    return None


def _holds_all(folder: str) -> bool:
    return all(_find(folder, f) for pair in _FILES.values() for f in pair)


def find_fashion_mnist(data_root: Optional[str] = None) -> str:
    """The folder holding the four Fashion-MNIST IDX files.

    Args:
        data_root (str, optional): Look only here. Defaults to None: ``$DEIT_FASHION_MNIST_DIR``,
            then ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``),
            then the unpacked package in ``~/.cache/deit_plugin/fmnist`` (``make data``).
    """
    env = os.environ.get('DEIT_FASHION_MNIST_DIR')
    if data_root:
        candidates = [osp.expanduser(data_root)]
    elif env and not _holds_all(env):
        # a set but wrong variable must not send the run to other files found elsewhere
        raise FileNotFoundError(
            f'DEIT_FASHION_MNIST_DIR={env} does not hold the four Fashion-MNIST IDX files '
            f'(train-images-idx3-ubyte[.gz], ...): fix it or unset it.'
        )
    else:
        base = os.environ.get('DEIT_PLUGIN_CACHE', osp.expanduser('~/.cache/deit_plugin'))
        cache = osp.join(base, 'fmnist', 'usr', 'share', 'datasets', 'fashion-mnist')
        candidates = [
            os.environ.get('DEIT_FASHION_MNIST_DIR'),
            '/usr/share/datasets/fashion-mnist',
            cache,
        ]
    for folder in candidates:
        if folder and _holds_all(folder):
            return folder
    where = repr(data_root) if data_root else ', '.join(_SEARCHED)
    raise FileNotFoundError(
        f'Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], ...) not found in {where}. '
        f'Run `make data` (installs the Debian package dataset-fashion-mnist, or unpacks it '
        f'into ~/.cache/deit_plugin without root), or set data_root / DEIT_FASHION_MNIST_DIR '
        f'to a folder with the four files of https://github.com/zalandoresearch/fashion-mnist.'
    )


def class_slugs() -> List[str]:
    """File-name forms of :data:`FASHION_MNIST_CLASSES` (``'t-shirt_top'``, ...,
    ``'ankle_boot'``)."""
    return [name.lower().replace('/', '_').replace(' ', '_') for name in FASHION_MNIST_CLASSES]


def load_fashion_mnist(
    split: str, data_root: Optional[str] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """The images (N x 28 x 28 uint8) and labels (N) of a Fashion-MNIST split.

    Args:
        split (str): ``'train'`` or ``'test'``.
        data_root (str, optional): Folder with the IDX files. Defaults to None (see
            :func:`find_fashion_mnist`).
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    folder = find_fashion_mnist(data_root)
    images_name, labels_name = _FILES[split]
    images = read_idx(_find(folder, images_name))
    labels = read_idx(_find(folder, labels_name))
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(
            f'{folder}: {split} images {images.shape} do not match labels {labels.shape}.'
        )
    return images, labels


@DATASETS.register_module()
class FashionMNISTIdx(BaseDataset):
    """Fashion-MNIST (28x28 gray, 10 classes) held in memory as uint8 arrays.

    Unlike mmpretrain's ``FashionMNIST`` it reads the ``.gz`` IDX files as they are installed
    (mmpretrain's wants them unpacked and otherwise downloads them), never downloads, and picks
    the split by ``split`` rather than by ``test_mode``. Each sample is ``{'img': HxW uint8,
    'gt_label': int}``; a pipeline starts after image loading (e.g. ``RandomFlip``,
    ``PackInputs``). It exists because decoding PNG files per sample is slower than the
    model step of a small student.

    Args:
        split (str): ``'train'`` (60,000 images) or ``'test'`` (10,000). Defaults to ``'train'``.
        data_root (str, optional): Folder with the IDX files (``.gz`` or unpacked). Defaults to
            None (see :func:`find_fashion_mnist`).
        indices (int | Sequence[int], optional): Keep only the first N samples (an int) or these
            indices, as mmengine's ``BaseDataset``. The train file is stored in shuffled order,
            so the first N are a random, nearly class-balanced subset. Defaults to None (all).
        index_range (Sequence[int], optional): ``(start, stop)``: keep the samples
            ``start <= i < stop`` of the file, e.g. ``(4500, 5000)`` for a held-out part next
            to a training part ``(0, 4500)``. Applied before ``indices``. Defaults to None.
        pipeline (Sequence): Transforms after loading. Defaults to ``()``.
        serialize_data (bool): mmengine's pickled data list; of no use for 0-worker loading of
            arrays this small. Defaults to False.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset`` (``test_mode``, ...).
    """

    METAINFO = {'classes': FASHION_MNIST_CLASSES}

    def __init__(
        self,
        split: str = 'train',
        data_root: Optional[str] = None,
        indices: Optional[Union[int, Sequence[int]]] = None,
        index_range: Optional[Sequence[int]] = None,
        pipeline: Sequence = (),
        serialize_data: bool = False,
        **kwargs,
    ) -> None:
        if split not in _FILES:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
        self.split = split
        if index_range is not None:
            if (
                len(index_range) != 2
                or not all(isinstance(i, int) for i in index_range)
                or not 0 <= index_range[0] < index_range[1]
            ):
                raise ValueError(
                    f'index_range must be (start, stop) with 0 <= start < stop, '
                    f'got {index_range!r}.'
                )
        self.index_range = None if index_range is None else tuple(index_range)
        self.folder = find_fashion_mnist(data_root)
        super().__init__(
            ann_file='',
            data_root=self.folder,
            indices=indices,
            pipeline=pipeline,
            serialize_data=serialize_data,
            **kwargs,
        )

    def _get_unserialized_subset(self, indices):
        if not isinstance(indices, int):
            bad = [i for i in indices if not -len(self.data_list) <= i < len(self.data_list)]
            if bad:
                raise ValueError(
                    f'indices {bad[:5]} are outside the {self.split} split of '
                    f'{len(self.data_list)} images: use indices in 0..{len(self.data_list) - 1} '
                    f'(or an int N for the first N).'
                )
        return super()._get_unserialized_subset(indices)

    def load_data_list(self) -> List[dict]:
        images, labels = load_fashion_mnist(self.split, self.folder)
        samples = [dict(img=img, gt_label=int(label)) for img, label in zip(images, labels)]
        if self.index_range is not None:
            start, stop = self.index_range
            if stop > len(samples):
                raise ValueError(
                    f'index_range {self.index_range} reaches past the {self.split} '
                    f'split ({len(samples)} images): use stop <= {len(samples)}.'
                )
            samples = samples[start:stop]
        return samples
