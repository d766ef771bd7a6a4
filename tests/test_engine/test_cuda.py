"""The GPU path: a distillation training step under fp16 AMP and bf16 against a plain-PyTorch
reference, DDP with NCCL in one process, and the teacher-output cache on the GPU.

Marked ``cuda`` and skipped without a CUDA device. The step and cache tests also run on the CPU
(bf16 through ``deit_plugin.CPUAmpOptimWrapper``), so the shared code is exercised everywhere.
"""

import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from reliability_utils import STUDENT_CFG, save_initialised_teacher
from tool_modules import ROOT, free_port

HAS_CUDA = torch.cuda.is_available()
cuda = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason='needs a CUDA GPU')]
DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
# (device, precision) of the step tests: fp16 needs CUDA (mmengine's AmpOptimWrapper)
STEPS = [
    pytest.param('cuda', 'fp16', marks=cuda),
    pytest.param('cuda', 'bf16', marks=cuda),
    pytest.param('cpu', 'bf16'),
]
IMG = 64  # 4x4 patches of 16 px: small, with the real DeiT-Ti widths


def pair(device: str, tmp_path):
    """The plugin's DeiT-Ti⚗ + ResNet-18 teacher and timm's DeiT-Ti⚗ with the same weights,
    on ``device`` (projects/benchmark's models: converted timm weights, a teacher checkpoint
    written and loaded)."""
    from mmpretrain.registry import MODELS

    from deit_plugin.models.distill_classifier import load_teacher_config

    from projects.benchmark.models import QUICK_TEACHER, build_plugin, plugin_cfg, timm_deit

    ref = timm_deit('tiny', IMG, seed=0)
    ref.set_distilled_training(True)
    teacher_cfg, _ = load_teacher_config(QUICK_TEACHER)
    torch.manual_seed(2)
    teacher = MODELS.build(teacher_cfg)
    teacher.init_weights()
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(teacher.state_dict(), ckpt)
    model = build_plugin(plugin_cfg('tiny', IMG, 'hard', QUICK_TEACHER, ckpt), ref)
    model.load_teacher_checkpoint()
    return model.to(device).train(), ref.to(device).train()


def data(n: int = 4):
    from mmpretrain.structures import DataSample

    g = torch.Generator().manual_seed(3)
    raw = torch.randint(0, 256, (n, 3, IMG, IMG), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 1000, (n,), generator=g)
    samples = []
    for i, y in enumerate(labels):
        sample = DataSample().set_gt_label(int(y))
        sample.set_metainfo(dict(sample_idx=i))
        samples.append(sample)
    return dict(inputs=list(raw), data_samples=samples), raw, labels


def optim_wrapper(model, device: str, precision: str):
    from mmengine.optim import build_optim_wrapper

    if device == 'cuda':
        wrapper = dict(
            type='AmpOptimWrapper',
            loss_scale='dynamic',
            dtype='bfloat16' if precision == 'bf16' else 'float16',
        )
    else:
        wrapper = dict(type='deit_plugin.CPUAmpOptimWrapper')
    return build_optim_wrapper(
        model,
        dict(
            wrapper,
            constructor='deit_plugin.StudentOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        ),
    )


def reference_loss(model, ref, raw, labels, device: str, precision: str) -> float:
    """The official engine.py loss in plain PyTorch under ``torch.autocast``:
    ``0.5 * LabelSmoothingCE(z_cls, y) + 0.5 * CE(z_dist, argmax z_teacher)``; the teacher is the
    plugin's own (an mmpretrain ResNet) on the normalised batch."""
    from timm.loss import LabelSmoothingCrossEntropy

    from projects.benchmark.models import normalise

    x = normalise(raw).to(device)
    labels = labels.to(device)
    with torch.no_grad(), torch.autocast(device, dtype=DTYPES[precision]):
        z_cls, z_dist = ref(x)
        z_teacher = model.teacher(x.contiguous(memory_format=torch.channels_last), mode='tensor')
        loss = 0.5 * LabelSmoothingCrossEntropy(0.1)(z_cls.float(), labels) + 0.5 * F.cross_entropy(
            z_dist.float(), z_teacher.float().argmax(1)
        )
    return float(loss)


@pytest.mark.parametrize('device, precision', STEPS)
def test_mixed_precision_distillation_step_matches_plain_pytorch(device, precision, tmp_path):
    model, ref = pair(device, tmp_path)
    batch, raw, labels = data()
    expected = reference_loss(model, ref, raw, labels, device, precision)
    log_vars = model.train_step(batch, optim_wrapper(model, device, precision))
    loss = float(log_vars['loss'])
    # half-precision matmuls: the two sides round differently
    assert loss == pytest.approx(expected, rel=2e-2), (loss, expected)
    assert {'loss_cls', 'loss_dist'} <= set(log_vars)
    assert all(p.grad is None for p in model.teacher.parameters())  # teacher left out


@pytest.mark.parametrize('device', [pytest.param('cuda', marks=cuda), 'cpu'])
def test_teacher_cache_replays_the_live_teacher_on_the_device(device, tmp_path):
    """The teacher's top-10 logits recorded on ``device`` and read back by the cached model:
    the cached step's loss equals the live step's on the same batch and weights."""
    from mmpretrain.registry import MODELS

    from deit_plugin.teacher_cache import RecordChunk, record_batch
    from deit_plugin.teacher_cache.storage import (
        FORMAT_VERSION,
        chunk_name,
        save_chunk,
        stores_all_classes,
        write_manifest,
    )

    model, _ = pair(device, tmp_path)
    batch, _, _ = data()
    pre = model.data_preprocessor(batch, True)
    chunk = RecordChunk()
    with torch.no_grad():
        record_batch(model, chunk, 0, [(i, i) for i in range(4)], 0, pre['inputs'], 10)
    cache_dir = tmp_path / 'cache'
    cache_dir.mkdir()
    save_chunk(str(cache_dir / chunk_name(0, 0, 0)), chunk.finish())
    write_manifest(
        str(cache_dir),
        dict(
            format=FORMAT_VERSION,
            num_classes=1000,
            topk=10,
            stores_all_classes=stores_all_classes(1000, 10),
            batches_per_epoch=1,
            chunk_iters=1,
            epochs=1,
            seed=0,
            batch_size=4,
            world_size=1,
            data='tests/test_engine/test_cuda.py',
            teacher_precision='fp32',
        ),
    )
    cfg = dict(model_cfg(model), teacher_cache=dict(dir=str(cache_dir)))
    cached = MODELS.build(cfg).to(device).train()
    cached.load_state_dict(model.state_dict())
    cached.teacher_cache.set_step(0, 0)
    with torch.no_grad():
        live = model.loss(pre['inputs'], pre['data_samples'])
        replay = cached.loss(pre['inputs'], pre['data_samples'])
    assert float(replay['loss_dist']) == pytest.approx(float(live['loss_dist']), rel=1e-6)
    assert replay['loss_dist'].device.type == device


def model_cfg(model) -> dict:
    from projects.benchmark.models import QUICK_TEACHER, plugin_cfg

    return plugin_cfg('tiny', IMG, 'hard', QUICK_TEACHER, model.teacher_ckpt)


@pytest.mark.slow
@pytest.mark.parametrize('_', [pytest.param(0, marks=cuda)])
def test_ddp_with_nccl_in_one_process(_, fmnist_root, tmp_path):
    """tools/train.py under torchrun with one process: mmengine's pytorch launcher, NCCL,
    MMDistributedDataParallel around the student (the teacher in its ignore list)."""
    teacher = save_initialised_teacher(str(tmp_path / 'teacher.pth'))
    work_dir = tmp_path / 'work'
    opts = [
        f'model.teacher_ckpt={teacher}',
        'train_cfg.max_epochs=1',
        'val_cfg=None',
        'val_dataloader=None',
        'val_evaluator=None',
        'train_dataloader.dataset.indices=64',
        'train_dataloader.batch_size=32',
        'env_cfg.dist_cfg.backend=nccl',
        f'train_dataloader.dataset.data_root={fmnist_root}',
    ]
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p),
    )
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node',
            '1',
            '--master_port',
            str(free_port()),
            osp.join(ROOT, 'tools/train.py'),
            STUDENT_CFG,
            '--launcher',
            'pytorch',
            '--work-dir',
            str(work_dir),
            '--cfg-options',
            *opts,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "backend='nccl'" in proc.stdout and 'Distributed training: True' in proc.stdout
    assert (work_dir / 'epoch_1.pth').is_file()
