import os
import os.path as osp
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))

import deit_plugin  # noqa: E402,F401

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
    import fashion_mnist_to_custom as conv
    try:
        src = conv.find_source()
    except FileNotFoundError as e:
        pytest.fail(f'Fashion-MNIST is needed by the tests (make test installs it): {e}')
    out = tmp_path_factory.mktemp('fmnist')
    conv.convert(src, str(out), limit=2000)
    return str(out)
