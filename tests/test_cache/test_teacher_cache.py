"""Teacher-output cache: the record pass writes the teacher's outputs for the exact batches of a
training run (v2 study augmentations: random crop, flip, RandAugment, random erasing,
Mixup/CutMix), replay reproduces those batches bit for bit and trains as the live teacher does,
check mode compares with the live teacher, and caches of other runs are refused."""

import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from reliability_utils import ROOT, save_initialised_teacher
from tool_modules import TESTS, load_tool

from deit_plugin.datasets import sample_seed
from deit_plugin.models import DistillationClassifier
from deit_plugin.teacher_cache import (
    TeacherCache,
    TeacherCacheError,
    pack_logits,
    recorded_batches,
    unpack_logits,
)
from deit_plugin.teacher_cache.identity import run_identity
from deit_plugin.teacher_cache.recorder import build_record_loader, build_record_model
from deit_plugin.teacher_cache.storage import load_chunk

record_tool = load_tool('record_teacher.py')
train_tool = load_tool('train.py')

V2 = osp.join(ROOT, 'configs/fashion_mnist/study/deit_tiny_student_v2.py')
EPOCHS, PER_EPOCH, BATCH = 2, 4, 16  # 64 images


def write_config(path, teacher_ckpt, cache_dir, check_fraction=0.0, extra_hooks=''):
    """The v2 study student (its augmentations, Mixup/CutMix included) on 64 in-memory
    Fashion-MNIST images with per-sample seeding, replaying ``cache_dir`` (None: the live
    teacher); no validation."""
    cache = f"dict(dir='{cache_dir}', check_fraction={check_fraction})" if cache_dir else 'None'
    cache_hook = ",\n                dict(type='deit_plugin.TeacherCacheHook')" if cache_dir else ''
    with open(path, 'w') as f:
        f.write(f"""_base_ = ['{V2}']
custom_imports = dict(imports=['deit_plugin', 'signal_test_hooks'], allow_failed_imports=False)
model = dict(teacher_ckpt='{teacher_ckpt}', predict_with_teacher=False,
             teacher_cache={cache})
train_dataloader = dict(
    _delete_=True, batch_size={BATCH}, num_workers=0,
    sampler=dict(type='deit_plugin.SeededSampler',
                 sampler=dict(type='DefaultSampler', shuffle=True)),
    dataset=dict(type='deit_plugin.SeededDataset',
                 dataset=dict(type='deit_plugin.FashionMNISTIdx', indices=64,
                              pipeline={{{{_base_.train_pipeline}}}})))
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0,
                        end={EPOCHS}, convert_to_iter_based=True)]
train_cfg = dict(_delete_=True, by_epoch=True, max_epochs={EPOCHS})
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=3))
log_level = 'WARNING'
custom_hooks = [dict(type='deit_plugin.DistillationHook'),
                dict(type='deit_plugin.RandomStateHook'),
                dict(type='deit_plugin.ExactResumeHook'){cache_hook}{extra_hooks}]
""")
    return str(path)


class CaptureTeacherInputs:
    """Keeps every batch the teacher is run on (the record pass; check mode in replay)."""

    def __init__(self, monkeypatch):
        self.inputs = []
        live = DistillationClassifier.teacher_logits

        def capture(model, inputs):
            self.inputs.append(inputs.detach().clone())
            return live(model, inputs)

        monkeypatch.setattr(DistillationClassifier, 'teacher_logits', capture)


@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
    """A teacher, a config, and its cache recorded for 2 epochs in chunks of 3 batches, with
    the inputs the teacher saw."""
    tmp = tmp_path_factory.mktemp('teacher_cache')
    teacher = save_initialised_teacher(str(tmp / 'teacher.pth'))
    config = write_config(tmp / 'student.py', teacher, tmp / 'cache')
    mp = pytest.MonkeyPatch()
    capture = CaptureTeacherInputs(mp)
    result = record_tool.main(
        [
            config,
            '--epochs',
            str(EPOCHS),
            '--out',
            str(tmp / 'cache'),
            '--chunk-iters',
            '3',
            '--no-progress',
        ]
    )
    mp.undo()
    return dict(
        tmp=tmp,
        teacher=teacher,
        config=config,
        cache=str(tmp / 'cache'),
        result=result,
        inputs=capture.inputs,
    )


# -- storage ---------------------------------------------------------------------------------------
def test_all_logits_are_stored_exactly_when_classes_fit_in_k():
    logits = torch.randn(32, 10) * 5
    for k in (10, 16):
        packed = pack_logits(logits, k)
        assert packed['values'].dtype == np.float32 and 'logsumexp' not in packed
        assert torch.equal(unpack_logits(packed['values'], packed['classes'], None, 10), logits)


def test_topk_rebuild_keeps_the_kept_probabilities_and_the_argmax():
    torch.manual_seed(0)
    logits = torch.randn(64, 100) * 3
    logits[0, 7], logits[0, 8] = 9.0, 9.0 + 1e-3  # the same float16 value: a tie after rounding
    packed = pack_logits(logits, 10)
    assert packed['values'].dtype == np.float16 and packed['classes'].dtype == np.uint8
    rebuilt = unpack_logits(packed['values'], packed['classes'], packed['logsumexp'], 100)
    assert torch.equal(rebuilt.argmax(1), logits.argmax(1))  # row 0 too (class 8)
    classes = torch.from_numpy(packed['classes'].astype(np.int64))
    kept = rebuilt.gather(1, classes)
    assert (kept - logits.gather(1, classes)).abs().max() <= logits.abs().max() * 2**-11
    p_true, p_rebuilt = logits.softmax(1), rebuilt.softmax(1)
    # float16 logits (|z| < 12 here): probabilities within ~2 * 12 * 2**-11 relative
    rtol = 2 * float(logits.abs().max()) * 2**-11
    assert torch.allclose(
        p_rebuilt.gather(1, classes), p_true.gather(1, classes), rtol=rtol, atol=0
    )
    rest = torch.ones_like(logits, dtype=torch.bool).scatter_(1, classes, False)
    others = rebuilt[rest].view(64, 90)
    assert torch.equal(others, others[:, :1].expand(-1, 90))  # one fill value per sample
    assert (others[:, 0] < kept[:, -1]).all()  # below the K-th kept logit
    # the mass left to the others: 1 - the kept mass, so off by at most the kept entries' error
    assert torch.allclose((p_rebuilt * rest).sum(1), (p_true * rest).sum(1), rtol=0, atol=rtol)


def test_bytes_per_sample_epoch_of_the_record(recorded):
    """10 classes, K=10: every logit as float32 (40 B) + uint8 classes (10 B) + index (4 B) +
    seed (8 B) per row; chunk headers of this tiny cache add the rest."""
    result = recorded['result']
    assert result['rows'] == EPOCHS * 64 and result['recorded'] == EPOCHS * PER_EPOCH
    files = [f for f in os.listdir(recorded['cache']) if f.endswith('.npz')]
    assert sorted(files) == [
        'e0000_r0_b0000000.npz',
        'e0000_r0_b0000003.npz',
        'e0001_r0_b0000000.npz',
        'e0001_r0_b0000003.npz',
    ]
    assert result['bytes'] == sum(osp.getsize(osp.join(recorded['cache'], f)) for f in files)
    chunk = load_chunk(osp.join(recorded['cache'], 'e0001_r0_b0000000.npz'))
    payload = sum(a.nbytes for a in chunk.values())
    assert payload / 48 < 64  # 3 batches of 16 rows
    assert chunk['batch_iter'].tolist() == [4, 5, 6]


# -- record --------------------------------------------------------------------------------------
def test_record_keys_are_the_training_streams_seeds(recorded):
    manifest = recorded['result']['manifest']
    for epoch in range(EPOCHS):
        chunk = load_chunk(osp.join(recorded['cache'], f'e{epoch:04d}_r0_b0000000.npz'))
        seeds = [sample_seed(manifest['seed'], epoch, int(i)) for i in chunk['sample_index']]
        assert chunk['sample_seed'].tolist() == seeds
        assert sorted(chunk['sample_index'].tolist()) != list(range(48))  # shuffled


def test_a_killed_record_pass_continues_to_the_same_files(recorded, tmp_path, monkeypatch):
    from deit_plugin.teacher_cache import recorder

    save, calls = recorder.save_chunk, []

    def dies_at_the_third_chunk(path, arrays):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return save(path, arrays)

    monkeypatch.setattr(recorder, 'save_chunk', dies_at_the_third_chunk)
    args = [
        recorded['config'],
        '--epochs',
        str(EPOCHS),
        '--out',
        str(tmp_path / 'c'),
        '--chunk-iters',
        '3',
        '--no-progress',
    ]
    with pytest.raises(KeyboardInterrupt):
        record_tool.main(args)
    assert not [f for f in os.listdir(tmp_path / 'c') if f.endswith('.part')]
    monkeypatch.setattr(recorder, 'save_chunk', save)
    result = record_tool.main(args)
    assert result['skipped'] == PER_EPOCH and result['recorded'] == PER_EPOCH  # epoch 2 only
    for name in os.listdir(recorded['cache']):
        if name.endswith('.npz'):
            a, b = (
                load_chunk(str(tmp_path / 'c' / name)),
                load_chunk(osp.join(recorded['cache'], name)),
            )
            assert all(np.array_equal(a[k], b[k]) for k in a), name


def test_record_refuses_unseeded_loading_and_a_directory_of_other_settings(recorded, tmp_path):
    cfg = Config.fromfile(recorded['config'])
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    cfg.train_dataloader.dataset = cfg.train_dataloader.dataset.dataset
    with pytest.raises(TypeError, match='needs per-sample seeded data loading.*SeededSampler'):
        build_record_loader(cfg)
    with pytest.raises(
        ValueError,
        match=r'holds a teacher cache recorded for other settings: '
        r'batch_size \(16 -> 8\)',
    ):
        record_tool.main(
            [
                recorded['config'],
                '--epochs',
                '1',
                '--out',
                recorded['cache'],
                '--chunk-iters',
                '3',
                '--no-progress',
                '--cfg-options',
                'train_dataloader.batch_size=8',
            ]
        )


# -- replay and check without a Runner -------------------------------------------------------------
def test_topk_cache_check_mode_has_no_label_mismatch(recorded, tmp_path):
    """K=5 of 10 classes: every batch of both epochs replayed through TeacherCache with the
    live teacher on the very batches of a training run: 0 hard-label mismatches, kept logits
    within float16 rounding."""
    out = str(tmp_path / 'top5')
    record_tool.main(
        [recorded['config'], '--epochs', str(EPOCHS), '--out', out, '--topk', '5', '--no-progress']
    )
    cfg = Config.fromfile(recorded['config'])
    model, loader = build_record_model(cfg), build_record_loader(cfg)
    from deit_plugin.datasets import SeededBatchAugments

    model.data_preprocessor.batch_augments = SeededBatchAugments(
        model.data_preprocessor.batch_augments, loader.sampler.seed
    )
    cache = TeacherCache(out, num_classes=10, check_fraction=1.0)
    cache.verify(run_identity(cfg, loader, model.teacher_fingerprint, 1), EPOCHS, PER_EPOCH, 0)
    biggest = 0.0
    for epoch in range(EPOCHS):
        for iteration, _, _, data in recorded_batches(model, loader, epoch):
            cache.set_step(epoch, iteration)
            live = model.teacher_logits(data['inputs'])
            biggest = max(biggest, float(live.abs().max()))
            logits = cache.teacher_logits(data['data_samples'], lambda: live)
            assert torch.equal(logits.argmax(1), live.argmax(1))
    assert cache.stats.batches == EPOCHS * PER_EPOCH and cache.stats.samples == EPOCHS * 64
    assert cache.stats.label_mismatches == 0
    assert 0 < cache.stats.max_abs_diff <= biggest * 2**-11


def test_a_cache_of_another_run_is_refused_naming_what_differs(recorded, tmp_path):
    """Data, augmentation, teacher weights, batch size, world size: each named; two at once in
    one message."""
    cache = TeacherCache(recorded['cache'], num_classes=10)
    other_teacher = save_initialised_teacher(str(tmp_path / 'other_teacher.pth'), seed=2)
    cases = {
        'data': (['train_dataloader.dataset.dataset.indices=48'], {}),
        'augmentation': (['data_preprocessor.batch_augments.augments.0.alpha=0.2'], {}),
        r'teacher weights \(fingerprint\)': ([f'model.teacher_ckpt={other_teacher}'], {}),
        r'batch size \(16 -> 8\)': (['train_dataloader.batch_size=8'], {}),
        r'world size \(1 -> 2\)': ([], dict(world_size=2)),
    }
    for what, (options, override) in cases.items():
        cfg = Config.fromfile(recorded['config'])
        cfg.merge_from_dict(
            {o.split('=')[0]: DictAction._parse_iterable(o.split('=')[1]) for o in options}
        )
        model, loader = build_record_model(cfg), build_record_loader(cfg)
        current = run_identity(cfg, loader, model.teacher_fingerprint, 1)
        current.update(override)
        with pytest.raises(TeacherCacheError, match=f'recorded for another run: {what}'):
            cache.verify(current, EPOCHS, len(loader), 0)
    current.update(batch_size=8)
    with pytest.raises(
        TeacherCacheError,
        match=r'batch size \(16 -> 8\); world size '
        r'\(1 -> 2\) \(recorded -> this run\). Record the cache',
    ):
        cache.verify(current, EPOCHS, PER_EPOCH, 0)
    with pytest.raises(TeacherCacheError, match='does not cover the 3 epochs.*e0002_r0'):
        cache.verify(dict(cache.manifest), 3, PER_EPOCH, 0)
    with pytest.raises(TeacherCacheError, match='no teacher cache in .*record one with'):
        TeacherCache(str(tmp_path), num_classes=10)


def test_a_cache_of_another_teacher_precision_is_refused(recorded):
    """The record pass ran the teacher in float32 ('auto' records float32): a run that asks
    for a bf16 teacher does not silently get float32 logits."""
    from deit_plugin.registry import MODELS

    cfg = Config.fromfile(recorded['config'])
    assert TeacherCache(recorded['cache'], num_classes=10).manifest['teacher_precision'] == 'fp32'
    model = dict(cfg.model, data_preprocessor=cfg.data_preprocessor)
    assert MODELS.build(dict(model, teacher_precision='auto')).teacher_cache is not None
    with pytest.raises(
        TeacherCacheError,
        match=r'holds fp32 teacher outputs, this run asks for '
        r"bf16 \(model.teacher_precision='bf16'\): set model.teacher_precision="
        r"'fp32' or record",
    ):
        MODELS.build(dict(model, teacher_precision='bf16'))


# -- training runs ---------------------------------------------------------------------------------
def train(config, work_dir, *options):
    args = [config, '--work-dir', str(work_dir), '--threads', str(torch.get_num_threads())]
    return train_tool.main(args + (['--cfg-options', *options] if options else []))


def final_state(work_dir):
    return torch.load(osp.join(str(work_dir), f'epoch_{EPOCHS}.pth'), map_location='cpu')[
        'state_dict'
    ]


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f'{name} differs'


@pytest.mark.slow
def test_replay_sees_the_recorded_batches_and_trains_as_the_live_teacher(recorded, monkeypatch):
    """tools/train.py with the cache and check_fraction=1: every batch the student (and the live
    teacher) sees equals, bit for bit, the batch of the record pass; 0 hard-label mismatches and
    max |delta logit| exactly 0 (all 10 logits stored as float32). The run ends with the weights
    of the same run with the live teacher. With another randomness.seed the data stream stays
    the cache's and only the initialisation changes."""
    from deit_plugin.utils import unwrap_model as unwrap

    tmp = recorded['tmp']
    replay_cfg = write_config(tmp / 'replay.py', recorded['teacher'], recorded['cache'], 1.0)
    capture = CaptureTeacherInputs(monkeypatch)
    runner = train(replay_cfg, tmp / 'replay')
    stats = unwrap(runner.model).teacher_cache.stats
    assert stats.batches == EPOCHS * PER_EPOCH and stats.samples == EPOCHS * 64
    assert stats.label_mismatches == 0 and stats.max_abs_diff == 0.0
    assert len(capture.inputs) == len(recorded['inputs']) == EPOCHS * PER_EPOCH
    for i, (a, b) in enumerate(zip(capture.inputs, recorded['inputs'])):
        assert torch.equal(a, b), f'batch {i} differs from the recorded one'
    monkeypatch.undo()

    live_cfg = write_config(tmp / 'live.py', recorded['teacher'], None)
    train(live_cfg, tmp / 'live')
    assert_same_state(final_state(tmp / 'replay'), final_state(tmp / 'live'))

    capture = CaptureTeacherInputs(monkeypatch)
    half_cfg = write_config(tmp / 'replay_half.py', recorded['teacher'], recorded['cache'], 0.5)
    runner = train(half_cfg, tmp / 'seed1', 'randomness.seed=1')
    assert unwrap(runner.model).teacher_cache.stats.batches == EPOCHS * PER_EPOCH // 2
    assert all(torch.equal(a, b) for a, b in zip(capture.inputs, recorded['inputs'][1::2]))
    seed1, seed0 = final_state(tmp / 'seed1'), final_state(tmp / 'replay')
    assert not torch.equal(seed1['backbone.cls_token'], seed0['backbone.cls_token'])


@pytest.mark.slow
def test_resume_mid_epoch_with_the_cache_is_bit_identical(recorded, monkeypatch):
    """A cached run stopped by SIGTERM during iteration 5 (epoch 2, batch 2), resumed with
    --resume: it continues at the next batch, finds each batch's record, and ends with the
    weights of the uninterrupted run."""
    from deit_plugin.engine import TrainingPreempted

    tmp = recorded['tmp']
    config = write_config(
        tmp / 'preempt.py',
        recorded['teacher'],
        recorded['cache'],
        1.0,
        ",\n                dict(type='deit_plugin.PreemptionHook'),\n"
        "                dict(type='SignalAtIterationHook')",
    )
    straight = tmp / 'straight'
    train(config, straight)
    monkeypatch.syspath_prepend(TESTS)
    monkeypatch.setenv('DEIT_TEST_SIGNAL_AT', '5')
    with pytest.raises(TrainingPreempted):
        train(config, tmp / 'preempted')
    monkeypatch.delenv('DEIT_TEST_SIGNAL_AT')
    from deit_plugin.utils import unwrap_model as unwrap

    args = [
        config,
        '--work-dir',
        str(tmp / 'preempted'),
        '--resume',
        '--threads',
        str(torch.get_num_threads()),
    ]
    runner = train_tool.main(args)
    stats = unwrap(runner.model).teacher_cache.stats
    assert stats.batches == EPOCHS * PER_EPOCH - 6 and stats.label_mismatches == 0
    assert_same_state(final_state(tmp / 'preempted'), final_state(straight))


@pytest.mark.slow
def test_training_refuses_a_cache_of_another_batch_size_and_a_missing_hook(recorded, tmp_path):
    with pytest.raises(
        TeacherCacheError,
        match=r'recorded for another run: batch size '
        r'\(16 -> 8\) \(recorded -> this run\)',
    ):
        train(recorded['config'], tmp_path / 'bs8', 'train_dataloader.batch_size=8')
    with pytest.raises(TeacherCacheError, match="add dict\\(type='deit_plugin.TeacherCacheHook'"):
        train(recorded['config'], tmp_path / 'nohook', 'custom_hooks.3.type=EMAHook')


STATS_HOOK = """
import json
import os.path as osp

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpCacheStatsHook(Hook):
    priority = 'LOWEST'

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        s = model.teacher_cache.stats
        with open(osp.join(runner.work_dir, f'stats_rank{runner.rank}.json'), 'w') as f:
            json.dump(dict(batches=s.batches, samples=s.samples,
                           mismatches=s.label_mismatches, max_abs_diff=s.max_abs_diff), f)
"""


@pytest.mark.slow
def test_two_processes_record_and_replay_their_shards(recorded, tmp_path, monkeypatch):
    """torchrun with 2 CPU processes (gloo): the record pass writes each rank's shard; 2-process
    training replays it with the live teacher checked on every batch: 0 mismatches and
    |delta logit| 0 on both ranks. One process refuses the 2-process cache."""
    import json
    import subprocess

    from tool_modules import free_port

    (tmp_path / 'dump_cache_stats.py').write_text(STATS_HOOK)
    cache = str(tmp_path / 'cache2')
    config = write_config(
        tmp_path / 'ddp.py',
        recorded['teacher'],
        cache,
        1.0,
        ",\n                dict(type='DumpCacheStatsHook')",
    )
    with open(config, 'a') as f:
        f.write(
            "custom_imports = dict(imports=['deit_plugin', 'dump_cache_stats'], "
            'allow_failed_imports=False)\n'
        )
    pythonpath = os.pathsep.join(
        p for p in (ROOT, TESTS, str(tmp_path), os.environ.get('PYTHONPATH')) if p
    )
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', PYTHONPATH=pythonpath)
    record = subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node=2',
            f'--master_port={free_port()}',
            osp.join(ROOT, 'tools/record_teacher.py'),
            config,
            '--epochs',
            str(EPOCHS),
            '--out',
            cache,
            '--launcher',
            'pytorch',
            '--no-progress',
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert record.returncode == 0, record.stderr[-3000:]
    assert sorted(f for f in os.listdir(cache) if f.startswith('e0000')) == [
        'e0000_r0_b0000000.npz',
        'e0000_r1_b0000000.npz',
    ]
    work_dir = tmp_path / 'ddp_replay'
    result = subprocess.run(
        ['bash', osp.join(ROOT, 'tools/dist_train.sh'), config, '2', '--work-dir', str(work_dir)],
        cwd=ROOT,
        env=dict(env, PORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        with open(work_dir / f'stats_rank{rank}.json') as f:
            stats = json.load(f)
        assert stats == dict(
            batches=EPOCHS * PER_EPOCH // 2, samples=EPOCHS * 32, mismatches=0, max_abs_diff=0.0
        ), rank
    monkeypatch.syspath_prepend(str(tmp_path))  # the config's custom hook module
    with pytest.raises(TeacherCacheError, match=r'world size \(2 -> 1\)'):
        train(config, tmp_path / 'one_process')


def test_the_cached_study_config_loads_the_v2_data_with_seeds():
    """configs/fashion_mnist/study/deit_tiny_student_v2_cached.py: the v2 student's 4,500
    training images and pipeline, per-sample seeded, 36 batches of 128 per epoch."""
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/fashion_mnist/study/deit_tiny_student_v2_cached.py')
    )
    v2 = Config.fromfile(V2)
    assert cfg.train_dataloader.dataset.dataset.pipeline == v2.train_pipeline
    assert cfg.model.teacher_cache.dir == 'work_dirs/teacher_cache/v2'
    loader = build_record_loader(cfg)
    assert len(loader.dataset) == 4500 and len(loader) == 36
    assert [h['type'] for h in cfg.custom_hooks][-2:] == [
        'deit_plugin.ExactResumeHook',
        'deit_plugin.TeacherCacheHook',
    ]


def test_data_without_get_data_info_is_refused_not_hashed_by_index():
    """Two such datasets of one length would have had the same identity."""
    from torch.utils.data import TensorDataset

    from deit_plugin.teacher_cache.identity import data_identity

    with pytest.raises(TypeError, match='TensorDataset does not have.*BaseDataset'):
        data_identity(TensorDataset(torch.zeros(4, 1)))
