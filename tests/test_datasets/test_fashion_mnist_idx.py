"""deit_plugin.FashionMNISTIdx: the real IDX files, read into memory, through the registry."""

import numpy as np
import pytest
from mmpretrain.registry import DATASETS
from tool_modules import load_tool

converter = load_tool('dataset_converters/fashion_mnist_to_custom.py')


def test_reads_both_splits_like_the_png_converter():
    train = DATASETS.build(dict(type='deit_plugin.FashionMNISTIdx', split='train'))
    test = DATASETS.build(dict(type='deit_plugin.FashionMNISTIdx', split='test'))
    assert (len(train), len(test)) == (60000, 10000)
    images, labels = converter.load_split(converter.find_source(), 'test')
    for i in (0, 1234, 9999):
        info = test.get_data_info(i)
        assert info['img'].shape == (28, 28) and info['img'].dtype == np.uint8
        assert np.array_equal(info['img'], images[i]) and info['gt_label'] == labels[i]
    assert train.get_data_info(0)['gt_label'] == 9  # Fashion-MNIST's first image: an ankle boot
    assert train.metainfo['classes'][9] == 'Ankle boot'


def test_indices_keep_the_first_images_and_pipeline_packs_gray_tensors():
    ds = DATASETS.build(
        dict(
            type='deit_plugin.FashionMNISTIdx',
            split='train',
            indices=500,
            pipeline=[dict(type='PackInputs')],
        )
    )
    full_labels = converter.load_split(converter.find_source(), 'train')[1][:500]
    assert len(ds) == 500
    assert [ds.get_data_info(i)['gt_label'] for i in range(500)] == full_labels.tolist()
    sample = ds[3]
    assert tuple(sample['inputs'].shape) == (1, 28, 28)
    assert int(sample['data_samples'].gt_label) == full_labels[3]


def test_missing_files_and_bad_split_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match='make data'):
        DATASETS.build(dict(type='deit_plugin.FashionMNISTIdx', data_root=str(tmp_path)))
    with pytest.raises(ValueError, match="'train' or 'test'"):
        DATASETS.build(dict(type='deit_plugin.FashionMNISTIdx', split='val'))


def test_a_set_but_wrong_environment_variable_is_not_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv('DEIT_FASHION_MNIST_DIR', str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match=f'DEIT_FASHION_MNIST_DIR={tmp_path} does not hold .*unset it'
    ):
        DATASETS.build(dict(type='deit_plugin.FashionMNISTIdx', indices=2))
    monkeypatch.delenv('DEIT_FASHION_MNIST_DIR')
    assert len(DATASETS.build(dict(type='deit_plugin.FashionMNISTIdx', indices=2))) == 2
