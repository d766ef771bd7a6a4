import os

import pytest
import torch
from tool_modules import load_tool

import deit_plugin  # noqa: F401

torch.set_num_threads(int(os.environ.get('DEIT_TEST_THREADS', '2')))


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    from mmengine.registry import DefaultScope, init_default_scope
    init_default_scope('mmpretrain')
    yield
    DefaultScope._instance_dict.clear()


@pytest.fixture(scope='session')
def fmnist_root(tmp_path_factory):
    """The first 2,000 train and 2,000 test images of the real Fashion-MNIST, as PNG folders."""
    conv = load_tool('dataset_converters/fashion_mnist_to_custom.py')
    try:
        src = conv.find_source()
    except FileNotFoundError as e:
        pytest.fail(f'Fashion-MNIST is needed by the tests (make test installs it): {e}')
    out = tmp_path_factory.mktemp('fmnist')
    conv.convert(src, str(out), limit=2000)
    return str(out)
