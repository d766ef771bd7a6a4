"""Kill and resume: a SIGKILLed tools/train.py run, resumed, ends with the same student weights,
bit for bit, as an uninterrupted run; the teacher is reloaded and never changes.

The student is the demo's DeiT⚗ with every random source switched on (random flips in the
pipeline, Mixup, drop-path, EMA, validation every epoch) on 125 real Fashion-MNIST images,
3 epochs of 4 iterations; the teacher is a freshly initialised ResNet_CIFAR saved as a checkpoint
(its weights do not matter for exactness, only that they stay fixed).
"""

import glob
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from reliability_utils import ROOT, STUDENT_CFG, save_initialised_teacher, tiny_student_cfg
from tool_modules import free_port, load_tool

pytestmark = pytest.mark.slow  # mmengine Runner / subprocess runs
train_tool = load_tool('train.py')
EPOCHS = 3


def state_of(path, key='state_dict'):
    return torch.load(path, map_location='cpu')[key]


def assert_bit_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f'{k} differs (max |diff| {(a[k] - b[k]).abs().max()})'


@pytest.fixture(scope='module')
def setup(fmnist_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('resume')
    teacher_ckpt = save_initialised_teacher(str(tmp / 'teacher.pth'))
    config = str(tmp / 'student_resume.py')
    with open(config, 'w') as f:
        f.write(f"""_base_ = ['{STUDENT_CFG}']
model = dict(teacher_ckpt='{teacher_ckpt}', backbone=dict(drop_path_rate=0.1),
             train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8)]))
custom_hooks = [dict(type='deit_plugin.DistillationHook'),
                dict(type='EMAHook', momentum=0.1, priority='ABOVE_NORMAL'),
                dict(type='deit_plugin.RandomStateHook'),
                dict(type='deit_plugin.FiniteLossHook')]
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
                   dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0,
                        end={EPOCHS}, convert_to_iter_based=True)]
train_cfg = dict(max_epochs={EPOCHS}, val_interval=1)
default_hooks = dict(logger=dict(interval=2),
                     checkpoint=dict(max_keep_ckpts=3))
# every 16th image (all classes): 125 train images, 4 iterations of up to 32 per epoch
train_dataloader = dict(batch_size=32, dataset=dict(indices=list(range(0, 2000, 16))))
val_dataloader = dict(dataset=dict(indices=list(range(0, 2000, 64))))
""")
    opts = ['--cfg-options'] + [
        f'{loader}.dataset.data_root={fmnist_root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    threads = ['--threads', str(torch.get_num_threads())]
    ref_dir = str(tmp / 'uninterrupted')
    runner = train_tool.main([config, '--work-dir', ref_dir, *threads, *opts])
    time.sleep(1.1)  # mmengine names runs by the second
    return dict(
        tmp=tmp,
        config=config,
        opts=opts,
        threads=threads,
        ref_dir=ref_dir,
        teacher_ckpt=teacher_ckpt,
        ref_runner=runner,
    )


@pytest.fixture(scope='module')
def killed(setup):
    """tools/train.py in a subprocess, SIGKILLed as soon as its 2nd checkpoint is complete."""
    work_dir = str(setup['tmp'] / 'killed')
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    log = open(str(setup['tmp'] / 'killed.log'), 'w')
    proc = subprocess.Popen(
        [
            sys.executable,
            osp.join(ROOT, 'tools/train.py'),
            setup['config'],
            '--work-dir',
            work_dir,
            *setup['threads'],
            *setup['opts'],
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    pointer = osp.join(work_dir, 'last_checkpoint')
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            if osp.isfile(pointer) and open(pointer).read().strip().endswith('epoch_2.pth'):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        returncode = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert returncode == -signal.SIGKILL, (
        f'the run was not killed mid-training (exit code {returncode}): '
        + open(str(setup['tmp'] / 'killed.log')).read()[-2000:]
    )
    assert not osp.exists(osp.join(work_dir, f'epoch_{EPOCHS}.pth'))
    return work_dir


def copy_of(work_dir, name):
    dst = osp.join(osp.dirname(work_dir), name)
    shutil.copytree(work_dir, dst)
    with open(osp.join(dst, 'last_checkpoint')) as f:  # the pointer holds absolute paths
        target = f.read().strip()
    with open(osp.join(dst, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(dst, osp.basename(target)))
    return dst


def test_uninterrupted_run_saves_random_states_and_ema(setup):
    ckpt = torch.load(osp.join(setup['ref_dir'], f'epoch_{EPOCHS}.pth'), map_location='cpu')
    assert set(ckpt['random_states']) == {'ranks', 'data_seed'}
    assert ckpt['random_states']['data_seed'] == 0
    assert {'python', 'numpy', 'torch'} <= set(ckpt['random_states']['ranks'][0])
    # the EMA weights are an average that trails the trained weights: finite, not equal to them
    ema = ckpt['ema_state_dict']
    key = 'module.backbone.layers.0.attn.qkv.weight'
    live = ckpt['state_dict']['backbone.layers.0.attn.qkv.weight']
    assert torch.isfinite(ema[key]).all() and ema[key].shape == live.shape
    assert not torch.allclose(ema[key], live)


def newest_log(work_dir):
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))
    with open(logs[-1]) as f:
        return f.read()


def test_resume_auto_after_sigkill_gives_bit_identical_weights(setup, killed):
    """`--resume` with no path follows last_checkpoint (epoch_2.pth) although epoch_1.pth is
    there too."""
    work_dir = copy_of(killed, 'resume_auto')
    runner = train_tool.main(
        [setup['config'], '--work-dir', work_dir, '--resume', *setup['threads'], *setup['opts']]
    )
    time.sleep(1.1)
    log = newest_log(work_dir)
    assert 'resumed epoch: 2' in log and 'restored the random states' in log
    # the teacher was reloaded from its own file and is bit-identical to it after training
    assert_bit_identical(runner.model.teacher.state_dict(), state_of(setup['teacher_ckpt']))
    final = osp.join(work_dir, f'epoch_{EPOCHS}.pth')
    ref = osp.join(setup['ref_dir'], f'epoch_{EPOCHS}.pth')
    # EMAHook saves the averaged weights as state_dict and the raw ones as ema_state_dict
    assert_bit_identical(state_of(final), state_of(ref))
    assert_bit_identical(state_of(final, 'ema_state_dict'), state_of(ref, 'ema_state_dict'))
    assert_bit_identical(
        state_of(final, 'optimizer')['state'][0], state_of(ref, 'optimizer')['state'][0]
    )


def test_resume_from_an_older_checkpoint_by_path_gives_bit_identical_weights(setup, killed):
    """`--resume <work_dir>/epoch_1.pth` in this process; the teacher is reloaded from its
    checkpoint, stays bit-identical and is in no optimizer parameter group (EMA included)."""
    work_dir = copy_of(killed, 'resume_path')
    os.remove(osp.join(work_dir, 'epoch_2.pth'))
    runner = train_tool.main(
        [
            setup['config'],
            '--work-dir',
            work_dir,
            '--resume',
            osp.join(work_dir, 'epoch_1.pth'),
            *setup['threads'],
            *setup['opts'],
        ]
    )
    time.sleep(1.1)
    ref = osp.join(setup['ref_dir'], f'epoch_{EPOCHS}.pth')
    assert_bit_identical(state_of(osp.join(work_dir, f'epoch_{EPOCHS}.pth')), state_of(ref))

    teacher_ckpt = state_of(setup['teacher_ckpt'])
    for run in (runner, setup['ref_runner']):
        model = run.model
        ema = [h for h in run.hooks if type(h).__name__ == 'EMAHook'][0].ema_model.module
        for teacher in (model.teacher, ema.teacher):
            assert_bit_identical(teacher.state_dict(), teacher_ckpt)
        in_optim = {id(p) for g in run.optim_wrapper.optimizer.param_groups for p in g['params']}
        assert not in_optim & {id(p) for p in model.teacher.parameters()}
        assert in_optim == {
            id(p) for n, p in model.named_parameters() if not n.startswith('teacher.')
        }


def test_without_the_random_state_hook_a_resume_is_not_exact(setup, killed):
    """The control: the same resume without RandomStateHook (mmengine alone) diverges, so the
    equality above is the hook's doing and not luck."""
    work_dir = copy_of(killed, 'resume_without_hook')
    for name in os.listdir(work_dir):
        if name.endswith('.pth'):
            ckpt = torch.load(osp.join(work_dir, name), map_location='cpu')
            ckpt.pop('random_states')
            torch.save(ckpt, osp.join(work_dir, name))
    train_tool.main(
        [setup['config'], '--work-dir', work_dir, '--resume', *setup['threads'], *setup['opts']]
    )
    time.sleep(1.1)
    final = state_of(osp.join(work_dir, f'epoch_{EPOCHS}.pth'))
    ref = state_of(osp.join(setup['ref_dir'], f'epoch_{EPOCHS}.pth'))
    assert not torch.equal(final['backbone.cls_token'], ref['backbone.cls_token'])


def test_ddp_resume_with_ema_keeps_the_teacher_bit_identical(setup, killed):
    """tools/dist_train.sh, 2 CPU processes, resuming the killed run's epoch_2.pth: the teacher
    is reloaded on both ranks and DistillationHook verifies on each rank, after training, that
    it (and EMA's copy) still has the fingerprint of the checkpoint file; the new checkpoint
    holds both ranks' random states."""
    from deit_plugin.models.teacher_slot import teacher_fingerprint

    work_dir = copy_of(killed, 'resume_ddp')
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', PORT=str(free_port()))
    result = subprocess.run(
        [
            'bash',
            osp.join(ROOT, 'tools/dist_train.sh'),
            setup['config'],
            '2',
            '--work-dir',
            work_dir,
            '--resume',
            *setup['opts'],
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = newest_log(work_dir)
    assert 'resumed epoch: 2' in log
    assert 'random states of 1 processes, this run has 2' in log  # said, not hidden
    fingerprint = teacher_fingerprint(state_of(setup['teacher_ckpt']))
    assert (
        f'teacher unchanged since it was loaded from {setup["teacher_ckpt"]} '
        f'(fingerprint {fingerprint})' in log
    )
    ckpt = torch.load(osp.join(work_dir, f'epoch_{EPOCHS}.pth'), map_location='cpu')
    assert len(ckpt['random_states']['ranks']) == 2
    assert not [k for k in ckpt['state_dict'] if k.startswith('teacher.')]


def test_iteration_based_loop_resumes_exactly(fmnist_root, tmp_path):
    """IterBasedTrainLoop re-loads the batches it skips on resume (their augmentations draw
    random numbers); the states are restored after that skip. 6 iterations straight vs 3, stop,
    resume, 3 more: the same weights, bit for bit."""
    from mmengine.runner import Runner

    teacher = save_initialised_teacher(str(tmp_path / 'teacher.pth'))

    def run(work_dir, max_iters, resume=None):
        cfg = tiny_student_cfg(fmnist_root, work_dir, teacher, every=16)
        cfg.model.backbone.drop_path_rate = 0.1
        cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
        cfg.param_scheduler = [
            dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=0, end=6)
        ]
        cfg.default_hooks.checkpoint = dict(
            type='deit_plugin.AtomicCheckpointHook', by_epoch=False, interval=3
        )
        cfg.log_processor = dict(by_epoch=False)
        cfg.resume, cfg.load_from = resume is not None, resume
        Runner.from_cfg(cfg).train()
        time.sleep(1.1)

    run(str(tmp_path / 'straight'), 6)
    run(str(tmp_path / 'stopped'), 3)
    run(str(tmp_path / 'stopped'), 6, resume=str(tmp_path / 'stopped' / 'iter_3.pth'))
    assert_bit_identical(
        state_of(str(tmp_path / 'stopped' / 'iter_6.pth')),
        state_of(str(tmp_path / 'straight' / 'iter_6.pth')),
    )


def test_resume_sets_the_sampler_and_worker_seed_back_to_the_checkpoints(fmnist_root):
    """With randomness=dict(seed=None) every run draws a new seed, and mmengine builds the
    train dataloader with it before resuming; the checkpoint's seed must win."""
    from mmengine.runner import Runner

    from deit_plugin.engine.resume_hook import set_data_seed

    loader = Runner.build_dataloader(
        dict(
            batch_size=4,
            num_workers=1,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(
                type='CustomDataset',
                data_root=fmnist_root,
                data_prefix='test',
                pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')],
            ),
        ),
        seed=123,
    )
    set_data_seed(loader, 7)  # what ResumeHook.before_train does with the checkpoint's seed
    assert loader.sampler.seed == 7
    assert loader.worker_init_fn.keywords['seed'] == 7
    first = list(iter(loader.sampler))
    loader.sampler.seed = 123
    assert first != list(iter(loader.sampler))  # the seed decides the order
