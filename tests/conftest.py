import os
import os.path as osp
import time

import pytest
import torch
from tool_modules import ROOT, load_tool

import deit_plugin  # noqa: F401

torch.set_num_threads(int(os.environ.get('DEIT_TEST_THREADS', '2')))


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    from mmengine.registry import DefaultScope, init_default_scope

    init_default_scope('mmpretrain')
    yield
    DefaultScope._instance_dict.clear()


class _RunnerClock:
    """``time`` as mmengine's runner module sees it, except that ``time()`` (read once per Runner,
    for its timestamp) never returns a second an earlier Runner of this process started in: it
    waits for the next second only then."""

    def __init__(self):
        self.last_second = None

    def __getattr__(self, name):
        return getattr(time, name)

    def time(self) -> float:
        now = time.time()
        if self.last_second is not None and int(now) <= self.last_second:
            time.sleep(self.last_second + 1 - now)
            now = time.time()
        self.last_second = int(now)
        return now


@pytest.fixture(autouse=True, scope='session')
def _one_second_per_runner():
    """mmengine names a Runner's logger, message hub and log folder by the second it starts
    (``Runner.setup_env``); two Runners of one second would share them. Every Runner built in
    the test process gets a second of its own, so tests need no ``sleep`` between runs."""
    import mmengine.runner.runner as runner_module

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner_module, 'time', _RunnerClock())
        yield


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


@pytest.fixture(scope='session')
def demo_student(fmnist_root, tmp_path_factory):
    """The demo's DeiT⚗ student (configs/fashion_mnist/deit_tiny_distill.py) trained by
    tools/train.py for 8 iterations with hard distillation from a saved and reloaded, randomly
    initialised ResNet_CIFAR teacher, on 256 real Fashion-MNIST images, validated on 64, logged
    to TensorBoard."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    train_tool = load_tool('train.py')
    work_dir = tmp_path_factory.mktemp('demo_student')
    config = osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py')
    teacher_cfg = Config.fromfile(osp.join(ROOT, 'configs/fashion_mnist/resnet_cifar_teacher.py'))
    teacher = MODELS.build(dict(teacher_cfg.model, data_preprocessor=teacher_cfg.data_preprocessor))
    teacher_ckpt = str(work_dir / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), teacher_ckpt)
    opts = [
        f'{loader}.dataset.data_root={fmnist_root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    opts += [
        'train_dataloader.dataset.indices=256',
        'train_dataloader.batch_size=32',
        'val_dataloader.dataset.indices=64',
        'test_dataloader.dataset.indices=64',
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'param_scheduler.0.end=4',
        'param_scheduler.1.end=1',
        'default_hooks.logger.interval=2',
        f'model.teacher_ckpt={teacher_ckpt}',
        # the one-line switch of docs/user_guides/visualization.md
        'visualizer.vis_backends.0.type=TensorboardVisBackend',
    ]
    train_tool.main([config, '--work-dir', str(work_dir), '--cfg-options', *opts])
    return dict(
        config=config,
        ckpt=str(work_dir / 'epoch_1.pth'),
        work_dir=str(work_dir),
        teacher_ckpt=teacher_ckpt,
        data_root=fmnist_root,
    )


def pytest_addoption(parser):
    parser.addoption(
        '--zoo-all',
        action='store_true',
        default=False,
        help='tests/test_models/test_teacher_zoo.py: every mmpretrain family, not the CI subset',
    )
