"""Convert Fashion-MNIST (IDX .gz files, Debian package ``dataset-fashion-mnist``) into
mmpretrain's ``CustomDataset`` folder layout::

    OUT/train/<label>_<name>/<index>.png    (60,000 images)
    OUT/test/<label>_<name>/<index>.png     (10,000 images)

Folder names start with the label so their sorted order is the label order (``CustomDataset``
assigns labels by sorted folder name). Images are 28x28 8-bit gray PNGs.

Usage::

    python tools/dataset_converters/fashion_mnist_to_custom.py [--src DIR] [--out DIR]
"""
import argparse
import json
import os
import os.path as osp
import sys

# the IDX reader of the in-memory dataset (deit_plugin is installed editable in .venv)
from deit_plugin.datasets import read_idx

DEFAULT_SRC = '/usr/share/datasets/fashion-mnist'
CLASSES = ('t-shirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker',
           'bag', 'ankle_boot')
SPLITS = {'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
          'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')}
INSTALL_HINT = (
    'Fashion-MNIST is not installed. On Debian/Ubuntu as root:\n'
    '    apt-get install dataset-fashion-mnist\n'
    'without root:\n'
    '    apt-get download dataset-fashion-mnist && '
    'dpkg-deb -x dataset-fashion-mnist_*.deb ~/.cache/deit_plugin/fmnist\n'
    '    export DEIT_FASHION_MNIST_DIR=~/.cache/deit_plugin/fmnist/usr/share/datasets/'
    'fashion-mnist\n'
    'or pass --src DIR with the four *-ubyte.gz files of '
    'https://github.com/zalandoresearch/fashion-mnist.')


def class_folders():
    return [f'{i}_{name}' for i, name in enumerate(CLASSES)]


def load_split(src: str, split: str):
    images_file, labels_file = SPLITS[split]
    images = read_idx(osp.join(src, images_file))
    labels = read_idx(osp.join(src, labels_file))
    if len(images) != len(labels):
        raise ValueError(f'{split}: {len(images)} images but {len(labels)} labels.')
    return images, labels


def convert(src: str, out: str, limit: int = 0) -> dict:
    """Write the PNG tree; returns {split: count}. Skips work already done (a ``meta.json``
    with the same source and limit)."""
    import cv2
    from tqdm import tqdm

    meta_path = osp.join(out, 'meta.json')
    wanted = dict(src=osp.abspath(src), limit=limit, classes=class_folders())
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if {k: meta.get(k) for k in wanted} == wanted:
            return meta['counts']
    counts = {}
    for split in SPLITS:
        images, labels = load_split(src, split)
        if limit:
            images, labels = images[:limit], labels[:limit]
        for folder in class_folders():
            os.makedirs(osp.join(out, split, folder), exist_ok=True)
        folders = class_folders()
        for i, (img, label) in enumerate(tqdm(list(zip(images, labels)), desc=f'{split} PNGs',
                                              unit='img', mininterval=2)):
            cv2.imwrite(osp.join(out, split, folders[label], f'{i:05d}.png'), img)
        counts[split] = int(len(images))
    with open(meta_path, 'w') as f:
        json.dump(dict(wanted, counts=counts), f, indent=1)
    return counts


def find_source(src=None) -> str:
    cache = osp.join(os.environ.get('DEIT_PLUGIN_CACHE', osp.expanduser('~/.cache/deit_plugin')),
                     'fmnist', 'usr', 'share', 'datasets', 'fashion-mnist')
    candidates = ([src] if src else
                  [os.environ.get('DEIT_FASHION_MNIST_DIR'), DEFAULT_SRC, cache])
    for cand in candidates:
        if cand and all(osp.isfile(osp.join(cand, f)) for pair in SPLITS.values()
                        for f in pair):
            return cand
    raise FileNotFoundError(INSTALL_HINT)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--src', help=f'folder with the IDX .gz files (default: '
                        f'$DEIT_FASHION_MNIST_DIR or {DEFAULT_SRC})')
    parser.add_argument('--out', default='data/fashion_mnist', help='output folder')
    parser.add_argument('--limit', type=int, default=0,
                        help='keep only the first N images of each split (0: all)')
    args = parser.parse_args(argv)
    try:
        src = find_source(args.src)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    counts = convert(src, args.out, args.limit)
    print(f'Fashion-MNIST in CustomDataset layout at {args.out}: {counts}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
