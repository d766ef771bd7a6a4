import gzip
import os.path as osp

import cv2
import numpy as np
import pytest
from tool_modules import load_tool

conv = load_tool('dataset_converters/fashion_mnist_to_custom.py')


def test_real_idx_files_have_the_documented_shapes_and_labels():
    src = conv.find_source()
    images, labels = conv.load_split(src, 'test')
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000, )
    assert np.bincount(labels).tolist() == [1000] * 10  # the test split is balanced


def test_pngs_hold_the_idx_pixels_in_label_ordered_folders(fmnist_root):
    images, labels = conv.load_split(conv.find_source(), 'train')
    folders = conv.class_folders()
    assert sorted(folders) == folders  # CustomDataset labels = sorted folder order
    for i in (0, 1, 1999):
        png = cv2.imread(osp.join(fmnist_root, 'train', folders[labels[i]], f'{i:05d}.png'),
                         cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(png, images[i])


def test_truncated_idx_file_is_reported(tmp_path):
    src = osp.join(conv.find_source(), 't10k-labels-idx1-ubyte.gz')
    with gzip.open(src, 'rb') as f:
        raw = f.read()
    bad = tmp_path / 'labels.gz'
    with gzip.open(bad, 'wb') as f:
        f.write(raw[:-100])
    with pytest.raises(ValueError, match='truncated'):
        conv.read_idx(str(bad))
