"""Published checkpoints (deit_plugin.checkpoint.published, tools/model_converters/
publish_model.py) and the teacher the demo ships."""

import hashlib
import os.path as osp

import pytest
import torch
from tool_modules import ROOT, load_tool

from deit_plugin.checkpoint import (
    CheckpointError,
    check_published,
    read_checkpoint,
    write_checkpoint,
)

DEMO_TEACHER = 'checkpoints/fashion_mnist/resnet_cifar18_fmnist5k_teacher_v2_epoch88-eba6616f.pth'


def test_publish_keeps_weights_and_meta_and_names_the_file_by_its_hash(tmp_path):
    src = str(tmp_path / 'epoch_3.pth')
    weights = {'w': torch.arange(6.0).reshape(2, 3)}
    write_checkpoint(
        dict(
            state_dict=weights,
            meta=dict(epoch=3, seed=0),
            optimizer={'state': {0: {'momentum_buffer': torch.ones(3)}}},
            message_hub={'log_scalars': {}},
            random_states={'torch': 1},
        ),
        src,
    )
    publish = load_tool('model_converters/publish_model.py')
    assert publish.main([src, str(tmp_path / 'model')]) == 0
    (path,) = [p for p in tmp_path.iterdir() if p.name.startswith('model-')]
    sha = check_published(str(path))
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.name == f'model-{sha[:8]}.pth'
    ckpt = read_checkpoint(str(path))
    assert sorted(ckpt) == ['meta', 'state_dict']
    assert torch.equal(ckpt['state_dict']['w'], weights['w']) and ckpt['meta']['epoch'] == 3
    assert ckpt['meta']['deit_plugin']['published_from'] == 'epoch_3.pth'
    assert not list(tmp_path.glob('*.unhashed.pth'))

    # one changed byte, a name without the hash, a missing file: each refused
    data = bytearray(path.read_bytes())
    data[-10] ^= 1
    changed = tmp_path / path.name.replace('model', 'copy')
    changed.write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError, match=f'has changed: its sha256 starts with .*its name says {sha[:8]}'
    ):
        check_published(str(changed))
    with pytest.raises(CheckpointError, match='name must end in'):
        check_published(src)
    with pytest.raises(CheckpointError, match='does not exist'):
        check_published(str(tmp_path / 'gone-01234567.pth'))
    assert publish.main([str(tmp_path / 'nothing.pth'), str(tmp_path / 'x')]) == 1


def test_the_demo_teacher_is_the_published_file_and_scores_its_held_out_accuracy():
    """The shipped teacher is intact and is the study's 5k CNN teacher: its top-1 on the 500
    held-out training images is the 93.0 that chose it (epoch 88 of 100)."""
    from mmengine.registry import init_default_scope

    from tools._support.model_loading import batches, build_loader, load_config, load_model

    path = osp.join(ROOT, DEMO_TEACHER)
    check_published(path)
    meta = read_checkpoint(path)['meta']
    assert meta['epoch'] == 88 and meta['seed'] == 0
    init_default_scope('mmpretrain')
    cfg = load_config(osp.join(ROOT, 'configs/fashion_mnist/study/resnet_cifar_teacher_v2.py'))
    model = load_model(cfg, path)
    correct = total = 0
    with torch.no_grad():
        for x, samples in batches(model, build_loader(cfg, 'val'), 'held-out'):
            pred = model(x, mode='tensor').argmax(1)
            correct += int((pred == torch.cat([s.gt_label for s in samples])).sum())
            total += len(samples)
    assert total == 500 and correct == 465  # 93.0 %
