"""Pre-emption: a signal mid-epoch makes tools/train.py write a checkpoint and exit with 75; the
resumed run continues the same epoch at the next batch and ends bit-identical to an
uninterrupted run — with a persistent dataloader worker, Mixup/CutMix, random crops and flips,
drop-path, EMA and validation every epoch; for iteration-based loops; under 2-process DDP.

The per-sample seeding this rests on (deit_plugin.datasets.sample_seeding / seeded_dataset) is
tested first, without a Runner.
"""

import glob
import os
import os.path as osp
import random
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, InfiniteSampler
from reliability_utils import ROOT, STUDENT_CFG, save_initialised_teacher
from tool_modules import TESTS, load_tool

from deit_plugin.datasets import (
    FashionMNISTIdx,
    SeededDataset,
    SeededSampler,
    batch_seed,
    sample_seed,
    seeded_random,
)
from deit_plugin.engine import PREEMPTED_EXIT_CODE, NonFiniteLossError, TrainingPreempted

from tools._support.workdir_lock import WorkDirBusyError

train_tool = load_tool('train.py')

# subprocesses import this checkout's deit_plugin and the tests' signal hook
PYTHONPATH = os.pathsep.join(p for p in (ROOT, TESTS, os.environ.get('PYTHONPATH')) if p)
PIPELINE = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]


# -- per-sample seeding, no Runner ----------------------------------------------------------------
def test_seeds_are_functions_of_their_key_only():
    # pinned: a seed recorded by one process (or release) must replay in another
    assert sample_seed(0, 1, 2) == 17235128713086557841
    assert batch_seed(0, 1, 2) == 280437145340732807
    keys = [(0, 1, 2, 0), (1, 1, 2, 0), (0, 2, 2, 0), (0, 1, 3, 0), (0, 1, 2, 1)]
    assert len({sample_seed(*k) for k in keys}) == len(keys)
    assert sample_seed(0, 1, 2) != batch_seed(0, 1, 2)
    assert batch_seed(0, 1, 2, rank=0) != batch_seed(0, 1, 2, rank=1)
    assert 0 <= sample_seed(2**40, 7, 10**9) < 2**64


def test_seeded_random_gives_the_same_draws_and_restores_the_callers_streams():
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    draws = []
    for _ in range(2):
        with seeded_random(sample_seed(0, 0, 4)):
            draws.append((torch.rand(2), random.random(), np.random.rand()))
    assert torch.equal(draws[0][0], draws[1][0]) and draws[0][1:] == draws[1][1:]
    after = (torch.rand(3), random.random(), np.random.rand())  # as if nothing had happened
    assert torch.equal(after[0], expected[0]) and after[1:] == expected[1:]


def seeded_fmnist(n=16):
    return SeededDataset(dict(type='deit_plugin.FashionMNISTIdx', indices=n, pipeline=PIPELINE))


def test_a_samples_augmentation_depends_on_its_seed_not_on_the_process_state():
    dataset = seeded_fmnist()
    seed = sample_seed(0, 0, 3)
    first = dataset.get_sample(3, seed)['inputs']
    torch.rand(100)
    np.random.rand(100)  # another process state
    assert torch.equal(dataset[(3, seed)]['inputs'], first)
    others = [dataset.get_sample(3, sample_seed(0, epoch, 3))['inputs'] for epoch in range(1, 6)]
    assert any(not torch.equal(o, first) for o in others)  # crops/flips do vary with the key
    raw = torch.from_numpy(FashionMNISTIdx(indices=16)[3]['img'].copy())
    assert not torch.equal(first[0], raw)  # augmented (padding 2: a shift or a flip)


def test_seeded_sampler_yields_seeded_indices_and_starts_mid_epoch():
    dataset = seeded_fmnist()
    sampler = SeededSampler(dataset, dict(type='DefaultSampler', shuffle=True), seed=3)
    epoch0 = list(sampler)
    assert [i for i, _ in epoch0] == list(DefaultSampler(dataset, shuffle=True, seed=3))
    assert [s for _, s in epoch0] == [sample_seed(3, 0, i) for i, _ in epoch0]
    sampler.start_at(0, 5)
    assert list(sampler) == epoch0[5:]
    assert list(sampler) == epoch0  # the start applies once
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert dict(epoch1) != dict(epoch0) and sorted(i for i, _ in epoch1) == list(range(16))
    sampler.start_at(2, 4)
    with pytest.raises(
        RuntimeError, match='resume epoch 2 but the sampler is at epoch 1.*DistSamplerSeedHook'
    ):
        list(sampler)
    sampler.seed = 4  # what ResumeHook does on resume
    assert sampler.sampler.seed == 4 and list(sampler) != epoch1


def test_repeated_augmentation_copies_get_their_own_seeds():
    dataset = seeded_fmnist(4)
    sampler = SeededSampler(
        dataset, dict(type='RepeatAugSampler', num_repeats=3, shuffle=False), seed=0
    )
    pairs = list(sampler)
    assert [i for i, _ in pairs] == [0, 0, 0, 1]  # 4 samples per epoch, the copies adjacent
    assert len({s for _, s in pairs[:3]}) == 3


def test_infinite_sampler_stream_restarts_at_a_position_and_counts_passes():
    dataset = seeded_fmnist(8)
    sampler = SeededSampler(dataset, dict(type='InfiniteSampler', shuffle=True), seed=1)
    assert isinstance(sampler.sampler, InfiniteSampler)
    it = iter(sampler)
    stream = [next(it) for _ in range(20)]
    assert [s for _, s in stream[8:16]] == [sample_seed(1, 1, i) for i, _ in stream[8:16]]
    sampler.start_at(0, 7)
    it = iter(sampler)
    assert [next(it) for _ in range(13)] == stream[7:]


def test_the_wrappers_refuse_to_work_alone():
    plain = FashionMNISTIdx(indices=4)
    with pytest.raises(
        TypeError, match="needs the dataloader's dataset wrapped in deit_plugin.SeededDataset"
    ):
        SeededSampler(plain, dict(type='DefaultSampler'), seed=0)
    with pytest.raises(TypeError, match=r'indexed by \(index, seed\) pairs.*got 2'):
        seeded_fmnist(4)[2]


def test_batches_are_the_same_whichever_process_loads_them():
    """0 workers, 2 workers and 1 persistent worker over two epochs: the same tensors."""
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader

    dataset = seeded_fmnist()

    def epochs(**kwargs):
        sampler = SeededSampler(dataset, dict(type='DefaultSampler', shuffle=True), seed=0)
        loader = DataLoader(
            dataset, batch_size=4, sampler=sampler, collate_fn=pseudo_collate, **kwargs
        )
        out = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            torch.rand(7)  # the main process's state changes between epochs
            out += [torch.stack(b['inputs']) for b in loader]
        return out

    reference = epochs(num_workers=0)
    for kwargs in (dict(num_workers=2), dict(num_workers=1, persistent_workers=True)):
        assert all(torch.equal(a, b) for a, b in zip(reference, epochs(**kwargs))), kwargs


# -- the hooks without a Runner -------------------------------------------------------------------
def fake_runner(*hooks, sampler=None):
    from mmengine.logging import MessageHub, MMLogger

    loop = SimpleNamespace(dataloader=SimpleNamespace(sampler=sampler))
    return SimpleNamespace(
        hooks=list(hooks),
        iter=3,
        epoch=0,
        train_loop=loop,
        logger=MMLogger.get_current_instance(),
        message_hub=MessageHub.get_current_instance(),
    )


@pytest.mark.parametrize(
    'elsewhere',
    [(0.0, 1.0), (1.0, 0.0), (0.0, 0.0)],
    ids=['signal_on_another_rank', 'nan_on_another_rank', 'nan_here'],
)
def test_one_collective_per_iteration_decides_both_stops(monkeypatch, elsewhere):
    """Under DDP one all-reduce of two flags (non-finite loss, signal) per iteration: a verdict
    of any rank stops every rank, and a rank that saw nothing still joins the collective."""
    from deit_plugin.engine import AtomicCheckpointHook, SafeStopHook, safe_stop_hook

    reduced = []

    def all_reduce(flags, op):
        reduced.append(flags.clone())
        flags += torch.tensor(elsewhere)

    monkeypatch.setattr(safe_stop_hook, 'get_dist_info', lambda: (0, 2))
    monkeypatch.setattr(safe_stop_hook, 'all_reduce', all_reduce)
    monkeypatch.setattr(safe_stop_hook, 'barrier', lambda: None)
    checkpointer = AtomicCheckpointHook()
    saved = []
    monkeypatch.setattr(
        checkpointer, 'save_resumable', lambda runner, name: saved.append(name) or f'/work/{name}'
    )
    hook = SafeStopHook(signals=())
    runner = fake_runner(hook, checkpointer)
    hook.signals = [signal.SIGTERM]  # as if installed; no handler is needed for the test
    outputs = dict(loss_cls=torch.tensor(1.0), loss_dist=torch.tensor(0.5))
    if elsewhere == (0.0, 0.0):
        outputs['loss_dist'] = torch.tensor(float('nan'))
    expected = {
        (0.0, 1.0): TrainingPreempted,
        (1.0, 0.0): NonFiniteLossError,
        (0.0, 0.0): NonFiniteLossError,
    }[elsewhere]
    with pytest.raises(expected) as e:
        hook.after_train_iter(runner, 3, outputs=outputs)
    assert len(reduced) == 1 and reduced[0].tolist() == [float(elsewhere == (0.0, 0.0)), 0.0]
    if expected is TrainingPreempted:
        assert saved == ['iter_4.pth'] and e.value.checkpoint == '/work/iter_4.pth'
        assert e.value.code == PREEMPTED_EXIT_CODE
    elif elsewhere == (1.0, 0.0):
        assert str(e.value).startswith('another process saw a non-finite loss at iteration 4')
    else:
        assert 'loss_dist = nan (distillation loss)' in str(e.value) and not saved


def test_old_hook_names_map_to_the_new_hooks_and_one_of_each_acts():
    """Configs written for the earlier hooks keep working next to the runtime base's hooks:
    the first hook of a kind acts, with the settings of all of that kind; the others idle."""
    from deit_plugin.engine import AtomicCheckpointHook, ResumeHook, SafeStopHook
    from deit_plugin.registry import HOOKS

    with pytest.warns(
        DeprecationWarning, match='RandomStateHook is deprecated: it is deit_plugin.ResumeHook'
    ):
        old = [
            HOOKS.build(dict(type=f'deit_plugin.{name}'))
            for name in ('RandomStateHook', 'ExactResumeHook', 'FiniteLossHook')
        ]
        old.append(HOOKS.build(dict(type='deit_plugin.PreemptionHook', signals=('SIGUSR2',))))
    assert [type(h).__mro__[1] for h in old] == [ResumeHook, ResumeHook, SafeStopHook, SafeStopHook]
    stop, resume = SafeStopHook(signals=(), check_loss=False), ResumeHook()
    runner = fake_runner(
        stop, resume, *old, AtomicCheckpointHook(), sampler=DefaultSampler(list(range(4)))
    )
    try:
        for hook in runner.hooks:
            hook.before_run(runner)
        assert stop.signals == [signal.SIGUSR2] and stop.check_loss
        stop.before_train(runner)
        assert signal.getsignal(signal.SIGUSR2) == stop._handle
    finally:
        stop.after_run(runner)
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL
    nan = dict(loss=torch.tensor(float('nan')))
    for idle in old[2:]:
        idle.after_train_iter(runner, 0, outputs=nan)  # idle: no verdict of its own
    with pytest.raises(NonFiniteLossError):
        stop.after_train_iter(runner, 0, outputs=nan)
    checkpoint = dict(meta=dict(epoch=0, iter=4))
    for idle in old[:2]:
        idle.before_save_checkpoint(runner, checkpoint)
    assert set(checkpoint) == {'meta'}
    with pytest.raises(
        TypeError,
        match='needs per-sample seeded data loading, but the training sampler is DefaultSampler',
    ):  # ExactResumeHook's requirement
        resume.before_train(runner)


def test_a_signal_without_the_atomic_checkpoint_hook_is_refused_before_training():
    from deit_plugin.engine import SafeStopHook

    hook = SafeStopHook()
    with pytest.raises(
        ValueError,
        match='saves a checkpoint on a signal through '
        'deit_plugin.AtomicCheckpointHook, which the run does not have: set '
        "default_hooks.checkpoint=dict\\(type='deit_plugin.AtomicCheckpointHook'",
    ):
        hook.before_train(fake_runner(hook))
    SafeStopHook(signals=()).before_train(fake_runner())  # loss checks alone need no saving


def test_a_plain_sampler_continues_a_mid_epoch_checkpoint_at_the_next_batch():
    """Without seeded loading (the recipes' ImageNet and COCO loaders) an epoch-based loop
    resumed from a pre-emption checkpoint still continues at the next batch, without loading
    the batches trained before; mmengine alone would train the whole epoch again."""
    from torch.utils.data import DataLoader

    from deit_plugin.engine import ResumeHook
    from deit_plugin.engine.resume_hook import get_random_state

    data = list(range(16))
    loader = DataLoader(data, batch_size=4, sampler=DefaultSampler(data, shuffle=True, seed=0))
    loader.sampler.set_epoch(1)
    epoch = [b.tolist() for b in loader]
    hook = ResumeHook()
    runner = fake_runner(hook)
    runner.train_loop, runner._resume = SimpleNamespace(dataloader=loader, iter=6, epoch=1), True
    hook.after_load_checkpoint(
        runner,
        dict(
            meta=dict(epoch=1, iter=6), random_states=dict(ranks=[get_random_state()], data_seed=0)
        ),
    )
    hook.before_train(runner)  # 6 iterations done: 4 of epoch 1, 2 of epoch 2
    assert [b.tolist() for b in loader] == epoch[2:]
    assert [b.tolist() for b in loader] == epoch  # the next pass is whole again


RECIPES = sorted(
    osp.relpath(p, osp.join(ROOT, 'configs'))
    for pattern in ('deit_*.py', 'custom/*.py', 'det/*.py')
    for p in glob.glob(osp.join(ROOT, 'configs', pattern))
    if '_base_' not in osp.basename(p)
)


@pytest.mark.parametrize('name', RECIPES)
def test_every_recipe_gets_preemption_safety_from_its_runtime_base(name):
    from mmengine.config import Config

    cfg = Config.fromfile(osp.join(ROOT, 'configs', name))
    assert {
        k: cfg.default_hooks[k].get('type') for k in ('checkpoint', 'resume', 'safe_stop')
    } == dict(
        checkpoint='deit_plugin.AtomicCheckpointHook',
        resume='deit_plugin.ResumeHook',
        safe_stop='deit_plugin.SafeStopHook',
    )
    listed = {h['type'] for h in cfg.get('custom_hooks', [])}
    assert not listed & {
        f'deit_plugin.{n}'
        for n in ('RandomStateHook', 'ExactResumeHook', 'FiniteLossHook', 'PreemptionHook')
    }


def test_the_recipe_list_is_complete():
    assert (
        len(RECIPES) == 11
        and 'custom/deit_s_distill_ft.py' in RECIPES
        and 'det/retinanet_deit_s_win_sfp_1x_coco.py' in RECIPES
    )


# -- Runner: signal, checkpoint, exact resume ----------------------------------------------------
EPOCHS, PER_EPOCH = 3, 4  # 64 images in batches of 16


def write_config(path, teacher_ckpt, hooks_extra=''):
    with open(path, 'w') as f:
        f.write(f"""_base_ = ['{STUDENT_CFG}']
custom_imports = dict(imports=['deit_plugin', 'signal_test_hooks'], allow_failed_imports=False)
model = dict(teacher_ckpt='{teacher_ckpt}', backbone=dict(drop_path_rate=0.1),
             train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8),
                                      dict(type='CutMix', alpha=1.0)]))
train_dataloader = dict(
    _delete_=True, batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='deit_plugin.SeededSampler',
                 sampler=dict(type='DefaultSampler', shuffle=True)),
    dataset=dict(type='deit_plugin.SeededDataset',
                 dataset=dict(type='deit_plugin.FashionMNISTIdx', indices=64,
                              pipeline={PIPELINE!r})))
val_dataloader = dict(dataset=dict(_delete_=True, type='deit_plugin.FashionMNISTIdx',
                                   split='test', indices=64, pipeline=[dict(type='PackInputs')]))
test_dataloader = val_dataloader
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
                   dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0,
                        end={EPOCHS}, convert_to_iter_based=True)]
train_cfg = dict(max_epochs={EPOCHS}, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(max_keep_ckpts=2),
                     resume=dict(type='deit_plugin.ResumeHook'),
                     safe_stop=dict(type='deit_plugin.SafeStopHook'))
log_level = 'INFO'
custom_hooks = [dict(type='deit_plugin.DistillationHook'),
                dict(type='EMAHook', momentum=0.1, priority='ABOVE_NORMAL'),
                dict(type='SignalAtIterationHook'){hooks_extra}]
""")
    return str(path)


def load(path, key):
    return torch.load(path, map_location='cpu')[key]


def assert_same_training_state(final, ref):
    a, b = torch.load(final, map_location='cpu'), torch.load(ref, map_location='cpu')
    for key in ('state_dict', 'ema_state_dict'):  # EMA weights, raw student weights
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (
                f'{key}.{name} differs (max |diff| {(a[key][name] - b[key][name]).abs().max()})'
            )
    sa, sb = a['optimizer']['state'], b['optimizer']['state']
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in ('exp_avg', 'exp_avg_sq', 'step'):
            assert torch.equal(sa[i][k], sb[i][k]), f'optimizer state {i}.{k} differs'
    assert a['meta']['iter'] == b['meta']['iter'] == EPOCHS * PER_EPOCH


def newest_log(work_dir):
    with open(sorted(glob.glob(osp.join(work_dir, '*', '*.log')))[-1]) as f:
        return f.read()


@pytest.fixture(scope='module')
def epoch_setup(tmp_path_factory):
    os.environ.pop('DEIT_TEST_SIGNAL_AT', None)
    tmp = tmp_path_factory.mktemp('preempt')
    teacher = save_initialised_teacher(str(tmp / 'teacher.pth'))
    config = write_config(tmp / 'student_preempt.py', teacher)
    threads = ['--threads', str(torch.get_num_threads())]
    ref_dir = str(tmp / 'uninterrupted')
    train_tool.main([config, '--work-dir', ref_dir, *threads])
    time.sleep(1.1)  # mmengine names runs by the second
    return dict(tmp=tmp, config=config, threads=threads, ref_dir=ref_dir, teacher=teacher)


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_is_bit_identical(epoch_setup):
    """tools/train.py (1 persistent worker) gets SIGTERM during iteration 6 (0-based 5: epoch 2,
    batch 2, after an epoch checkpoint and a validation):
    while it waits there, a second tools/train.py on its work dir is refused with its PID;
    then it finishes the iteration, writes iter_<k+1>.pth, points last_checkpoint at it and
    exits with 75. `--resume` continues that epoch at the next batch: student, EMA and
    optimizer state end bit-identical to the uninterrupted run."""
    k = PER_EPOCH + 1
    tmp, work_dir = epoch_setup['tmp'], str(epoch_setup['tmp'] / f'preempted_at_{k}')
    pause = tmp / f'pause_{k}'
    pause.mkdir()
    env = dict(
        os.environ,
        PYTHONUNBUFFERED='1',
        DEIT_TEST_SIGNAL_AT=str(k),
        DEIT_TEST_PAUSE_DIR=str(pause),
        PYTHONPATH=PYTHONPATH,
    )
    log = open(str(tmp / f'preempted_{k}.log'), 'w')
    proc = subprocess.Popen(
        [
            sys.executable,
            osp.join(ROOT, 'tools/train.py'),
            epoch_setup['config'],
            '--work-dir',
            work_dir,
            *epoch_setup['threads'],
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 300
        while not (pause / 'paused').exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, open(str(tmp / f'preempted_{k}.log')).read()[-3000:]
        with pytest.raises(
            WorkDirBusyError,
            match=f'work dir {work_dir} is in use by another training run \\(PID {proc.pid},',
        ):
            train_tool.main([epoch_setup['config'], '--work-dir', work_dir])
        (pause / 'go').touch()
        returncode = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    output = open(str(tmp / f'preempted_{k}.log')).read()
    assert returncode == PREEMPTED_EXIT_CODE, f'k={k}: exit {returncode}\n{output[-3000:]}'
    ckpt = osp.join(work_dir, f'iter_{k + 1}.pth')
    assert open(osp.join(work_dir, 'last_checkpoint')).read().strip() == ckpt
    saved = torch.load(ckpt, map_location='cpu')
    assert saved['meta']['iter'] == k + 1 and saved['meta']['epoch'] == k // PER_EPOCH
    assert saved['train_position']['batch_in_epoch'] == (k + 1) % PER_EPOCH
    assert 'random_states' in saved and 'ema_state_dict' in saved
    assert not [p for p in os.listdir(work_dir) if p.endswith('.part')]

    train_tool.main(
        [epoch_setup['config'], '--work-dir', work_dir, '--resume', *epoch_setup['threads']]
    )
    time.sleep(1.1)
    assert (
        f'continuing epoch {k // PER_EPOCH + 1} at batch {(k + 1) % PER_EPOCH + 1} of {PER_EPOCH}'
    ) in newest_log(work_dir)
    assert_same_training_state(
        osp.join(work_dir, f'epoch_{EPOCHS}.pth'),
        osp.join(epoch_setup['ref_dir'], f'epoch_{EPOCHS}.pth'),
    )


@pytest.mark.slow
def test_iteration_loop_preempted_with_a_second_signal_while_saving(tmp_path, monkeypatch):
    """IterBasedTrainLoop + InfiniteSampler, 1 persistent worker, in this process: SIGUSR1
    during iteration 4, and a SIGTERM while the checkpoint is being written. One complete
    checkpoint (iter_5.pth), both signals reported; resuming to 8 iterations equals 8 straight."""
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    teacher = save_initialised_teacher(str(tmp_path / 'teacher.pth'))
    config = write_config(tmp_path / 'student_iter.py', teacher)

    def cfg(work_dir):
        c = Config.fromfile(config)
        c.work_dir = str(tmp_path / work_dir)
        c.train_dataloader.sampler.sampler = dict(type='InfiniteSampler', shuffle=True)
        c.train_cfg = dict(type='IterBasedTrainLoop', max_iters=8, val_interval=4)
        c.param_scheduler = [
            dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=0, end=8)
        ]
        c.default_hooks.checkpoint = dict(
            type='deit_plugin.AtomicCheckpointHook', by_epoch=False, interval=4
        )
        c.log_processor = dict(by_epoch=False)
        return c

    class SecondSignalWhileSaving(Hook):
        priority = 'VERY_HIGH'

        def before_save_checkpoint(self, runner, checkpoint):
            if runner.iter + 1 == 5:
                os.kill(os.getpid(), signal.SIGTERM)

    Runner.from_cfg(cfg('straight')).train()
    time.sleep(1.1)
    monkeypatch.setenv('DEIT_TEST_SIGNAL_AT', '4')
    monkeypatch.setenv('DEIT_TEST_SIGNAL', 'SIGUSR1')
    runner = Runner.from_cfg(cfg('preempted'))
    runner.register_hook(SecondSignalWhileSaving())
    with pytest.raises(TrainingPreempted) as e:
        runner.train()
    time.sleep(1.1)
    assert e.value.code == PREEMPTED_EXIT_CODE and e.value.signals == ['SIGUSR1', 'SIGTERM']
    assert e.value.checkpoint == str(tmp_path / 'preempted' / 'iter_5.pth')
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers put back
    written = sorted(p for p in os.listdir(tmp_path / 'preempted') if p.endswith(('.pth', '.part')))
    assert written == ['iter_4.pth', 'iter_5.pth']  # complete, nothing half-written
    monkeypatch.delenv('DEIT_TEST_SIGNAL_AT')
    resumed = cfg('preempted')
    resumed.resume, resumed.load_from = True, e.value.checkpoint
    Runner.from_cfg(resumed).train()
    time.sleep(1.1)
    a = torch.load(str(tmp_path / 'preempted' / 'iter_8.pth'), map_location='cpu')
    b = torch.load(str(tmp_path / 'straight' / 'iter_8.pth'), map_location='cpu')
    for key in ('state_dict', 'ema_state_dict'):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f'{key}.{name} differs'


@pytest.mark.slow
def test_ddp_ranks_agree_on_the_stop_and_resume_bit_identical(epoch_setup):
    """2 CPU processes (torchrun, gloo): only rank 1 gets SIGTERM, during iteration 3 (0-based
    2: epoch 2, batch 1 of 2); both ranks stop after it (one all-reduce per iteration), rank 0
    writes one checkpoint with both ranks' random states. Resuming under DDP ends bit-identical
    to an uninterrupted
    DDP run."""
    from tool_modules import free_port

    per_epoch = PER_EPOCH // 2  # 64 images, 16 per rank and step
    k = per_epoch  # mid-epoch: (k + 1) % per_epoch != 0
    tmp = epoch_setup['tmp']

    def dist_train(work_dir, *extra, **env_extra):
        env = dict(
            os.environ,
            PYTHON=sys.executable,
            OMP_NUM_THREADS='1',
            PORT=str(free_port()),
            PYTHONPATH=PYTHONPATH,
            **env_extra,
        )
        env.pop('DEIT_TEST_SIGNAL_AT', None) if not env_extra else None
        return subprocess.run(
            [
                'bash',
                osp.join(ROOT, 'tools/dist_train.sh'),
                epoch_setup['config'],
                '2',
                '--work-dir',
                str(tmp / work_dir),
                *extra,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    result = dist_train('ddp_straight')
    assert result.returncode == 0, result.stderr[-3000:]
    result = dist_train('ddp_preempted', DEIT_TEST_SIGNAL_AT=str(k), DEIT_TEST_SIGNAL_RANK='1')
    assert result.returncode != 0  # torchrun reports the workers' exit 75 as a failure
    work_dir = str(tmp / 'ddp_preempted')
    ckpt = osp.join(work_dir, f'iter_{k + 1}.pth')
    log = newest_log(work_dir)
    assert f'saving a checkpoint after iteration {k + 1}' in log
    # torchrun's failure summary (torch/distributed/elastic/multiprocessing/errors/__init__.py)
    assert re.search(rf'exitcode\s*:\s*{PREEMPTED_EXIT_CODE}\b', result.stdout + result.stderr), (
        result.stderr[-3000:]
    )
    saved = torch.load(ckpt, map_location='cpu')
    assert saved['meta']['iter'] == k + 1 and len(saved['random_states']['ranks']) == 2
    assert [p for p in os.listdir(work_dir) if p.startswith('iter_')] == [f'iter_{k + 1}.pth']
    time.sleep(1.1)
    result = dist_train('ddp_preempted', '--resume')
    assert result.returncode == 0, result.stderr[-3000:]
    a = torch.load(osp.join(work_dir, f'epoch_{EPOCHS}.pth'), map_location='cpu')
    b = torch.load(str(tmp / 'ddp_straight' / f'epoch_{EPOCHS}.pth'), map_location='cpu')
    for key in ('state_dict', 'ema_state_dict'):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f'k={k}: {key}.{name} differs'
    assert torch.equal(a['optimizer']['state'][0]['exp_avg'], b['optimizer']['state'][0]['exp_avg'])
