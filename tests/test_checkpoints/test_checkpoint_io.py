"""A checkpoint being written when the process dies never replaces the last good one, and a
truncated checkpoint is reported as truncated, with its path, on every load path."""

import builtins
import os
import os.path as osp
import signal

import pytest
import torch
from mmengine.fileio import LocalBackend
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint
from reliability_utils import save_initialised_teacher, tiny_student_cfg

from deit_plugin.checkpoint import (
    AtomicLocalBackend,
    CheckpointTruncatedError,
    CheckpointUnreadableError,
    find_resume_checkpoint,
)

GOOD = {'state_dict': {'w': torch.arange(1000.0)}, 'meta': {'epoch': 1}}
NEW = {'state_dict': {'w': torch.zeros(200000)}, 'meta': {'epoch': 2}}


def save_bytes(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def die_while_writing(backend, path, how):
    """Fork; the child writes NEW to ``path`` with ``backend`` and is SIGKILLed mid-way."""
    pid = os.fork()
    if pid == 0:  # child: no torch ops, just file writes
        try:
            if how == 'before_rename':
                os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
            else:  # half of the bytes reach the disk, then the process dies
                real_open = builtins.open

                class Dying:
                    def __init__(self, f):
                        self.f = f

                    def write(self, data):
                        self.f.write(data[: len(data) // 2])
                        self.f.flush()
                        os.kill(os.getpid(), signal.SIGKILL)

                    def __enter__(self):
                        return self

                    def __exit__(self, *a):
                        self.f.close()

                    def __getattr__(self, name):
                        return getattr(self.f, name)

                builtins.open = lambda *a, **k: Dying(real_open(*a, **k))
            backend.put(save_bytes(NEW), path)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@pytest.mark.parametrize('how', ['mid_write', 'before_rename'])
def test_killed_atomic_write_leaves_the_previous_checkpoint_intact(tmp_path, how):
    path = str(tmp_path / 'epoch_2.pth')
    torch.save(GOOD, path)
    die_while_writing(AtomicLocalBackend(), path, how)
    assert torch.equal(torch.load(path)['state_dict']['w'], GOOD['state_dict']['w'])
    assert osp.exists(path + '.part')  # the unfinished write, under its temporary name


def test_mmengine_local_write_killed_mid_way_leaves_a_truncated_file_reported_as_such(tmp_path):
    """The upstream behaviour the atomic backend avoids, and the error it now gives."""
    path = str(tmp_path / 'epoch_2.pth')
    torch.save(GOOD, path)
    die_while_writing(LocalBackend(), path, 'mid_write')
    with pytest.raises(CheckpointTruncatedError, match=rf'checkpoint {path} is truncated'):
        _load_checkpoint(path, map_location='cpu')


def test_atomic_write_success_replaces_and_cleans_up(tmp_path):
    path = str(tmp_path / 'epoch_2.pth')
    torch.save(GOOD, path)
    AtomicLocalBackend().put(save_bytes(NEW), path)
    assert torch.load(path)['meta']['epoch'] == 2
    assert os.listdir(tmp_path) == ['epoch_2.pth']


def truncate(path, keep=0.5):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[: int(len(data) * keep)])


@pytest.fixture
def truncated(tmp_path):
    path = str(tmp_path / 'work' / 'epoch_3.pth')
    os.makedirs(osp.dirname(path))
    torch.save(GOOD, path.replace('epoch_3', 'epoch_2'))
    torch.save(GOOD, path)
    truncate(path)
    return path


def load_teacher(path):
    from model_builders import student

    student(teacher_ckpt=path).load_teacher_checkpoint()


def load_pretrained(path):
    load_checkpoint(torch.nn.Linear(1, 1), path)  # what init_cfg=dict(type='Pretrained') calls


def resume_with_train_py(path):
    from tool_modules import load_tool

    train = load_tool('train.py')
    train.merge_args(
        train.Config(dict(work_dir=osp.dirname(path))),
        train.parse_args(['cfg.py', '--resume', path]),
    )


@pytest.mark.parametrize(
    'load',
    [
        lambda p: _load_checkpoint(p, map_location='cpu'),
        load_pretrained,
        load_teacher,
        resume_with_train_py,
    ],
    ids=['runner_resume_and_load_from', 'init_cfg_pretrained', 'teacher_ckpt', 'train_py_resume'],
)
def test_truncated_checkpoint_is_reported_with_its_path_and_the_fix(truncated, load):
    with pytest.raises(CheckpointTruncatedError) as e:
        load(truncated)
    msg = str(e.value)
    assert f'checkpoint {truncated} is truncated' in msg
    assert 'probably killed' in msg and '--resume' in msg and 'epoch_2.pth' in msg


def test_empty_legacy_and_foreign_files_are_named(tmp_path):
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointTruncatedError, match='is empty'):
        _load_checkpoint(str(empty))
    legacy = str(tmp_path / 'legacy.pth')
    torch.save(GOOD, legacy, _use_new_zipfile_serialization=False)
    truncate(legacy)
    with pytest.raises(CheckpointTruncatedError, match=f'checkpoint {legacy} is truncated') as e:
        _load_checkpoint(legacy)
    assert e.value.__suppress_context__  # our message, not torch's unpickler traceback
    text = tmp_path / 'notes.pth'
    text.write_text('this is not a checkpoint\n')
    with pytest.raises(CheckpointUnreadableError, match='is not a PyTorch checkpoint'):
        _load_checkpoint(str(text))


def test_resume_auto_refuses_a_broken_last_checkpoint_pointer(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) is None  # nothing to resume: start fresh
    (tmp_path / 'last_checkpoint').write_text('')
    with pytest.raises(CheckpointTruncatedError, match='last_checkpoint is empty'):
        find_resume_checkpoint(str(tmp_path))
    torch.save(GOOD, str(tmp_path / 'epoch_1.pth'))
    (tmp_path / 'last_checkpoint').write_text('/elsewhere/old_work_dir/epoch_1.pth')
    with pytest.raises(FileNotFoundError, match='was the work dir moved.*--resume .*epoch_1.pth'):
        find_resume_checkpoint(str(tmp_path))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_1.pth')


class CrashWhileSaving(Hook):
    """Dies inside Runner.save_checkpoint of the given epoch (after mmengine's CheckpointHook
    has deleted the checkpoints beyond max_keep_ckpts), as a killed process would."""

    def __init__(self, epoch):
        self.epoch = epoch

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['epoch'] == self.epoch:
            raise KeyboardInterrupt('killed while saving')


@pytest.mark.slow
@pytest.mark.parametrize(
    'hook,survives', [('deit_plugin.AtomicCheckpointHook', True), ('CheckpointHook', False)]
)
def test_crash_while_saving_with_max_keep_ckpts_1(fmnist_root, tmp_path, hook, survives):
    """max_keep_ckpts=1: mmengine deletes epoch_1.pth before writing epoch_2.pth; the atomic
    hook deletes it only once epoch_2.pth is complete."""
    teacher = save_initialised_teacher(str(tmp_path / 'teacher.pth'))
    work_dir = str(tmp_path / 'work')
    cfg = tiny_student_cfg(fmnist_root, work_dir, teacher, epochs=2, every=64)
    cfg.default_hooks.checkpoint = dict(type=hook, interval=1, max_keep_ckpts=1)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(CrashWhileSaving(epoch=2))
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    epoch_1 = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(epoch_1) == survives
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))
    if survives:
        assert find_resume_checkpoint(work_dir) == epoch_1
        assert torch.load(epoch_1)['meta']['epoch'] == 1


def test_every_checkpoint_problem_is_one_catchable_error_class(tmp_path):
    from deit_plugin.checkpoint import (
        CheckpointError,
        CheckpointNotFoundError,
        check_checkpoint_file,
        read_checkpoint,
        unwrap_state_dict,
    )

    (tmp_path / 'text.pth').write_text('not a checkpoint')
    (tmp_path / 'empty.pth').write_bytes(b'')
    torch.save(torch.zeros(2), tmp_path / 'tensor.pth')
    problems = {
        'missing': lambda: check_checkpoint_file(str(tmp_path / 'nope.pth')),
        'unreadable': lambda: read_checkpoint(str(tmp_path / 'text.pth')),
        'truncated': lambda: read_checkpoint(str(tmp_path / 'empty.pth')),
        'not a dict': lambda: read_checkpoint(str(tmp_path / 'tensor.pth')),
        'no weights': lambda: unwrap_state_dict({'meta': {'epoch': 1}}),
    }
    raised = {}
    for name, problem in problems.items():
        with pytest.raises(CheckpointError) as e:
            problem()
        raised[name] = type(e.value).__name__
    assert raised == {
        'missing': 'CheckpointNotFoundError',
        'unreadable': 'CheckpointUnreadableError',
        'truncated': 'CheckpointTruncatedError',
        'not a dict': 'CheckpointUnreadableError',
        'no weights': 'WrongCheckpointKind',
    }
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)


@pytest.mark.parametrize(
    'keys, expected',
    [
        (
            ['backbone.conv1.weight', 'bbox_head.retina_cls.weight'],
            "a detector's checkpoint (it has bbox_head.retina_cls.weight)",
        ),
        (
            ['backbone.layers.0.ln1.weight', 'backbone.dist_token'],
            "a distilled DeiT student's checkpoint (it has backbone.dist_token)",
        ),
        (
            ['backbone.layers.0.ln1.weight', 'teacher.backbone.conv1.weight'],
            "a distillation model with its teacher's checkpoint (it has "
            'teacher.backbone.conv1.weight)',
        ),
        (
            ['backbone.layers.0.ln1.weight', 'head.fc.weight'],
            "a mmpretrain/deit_plugin classifier's checkpoint (it has backbone.layers.0.ln1.weight)",  # noqa: E501
        ),
        (['stem.conv.weight'], "a convolutional network's checkpoint (it has stem.conv.weight)"),
        (['fc.weight'], "a checkpoint of an unknown model (keys like ['fc.weight'])"),
    ],
)
def test_one_kind_detector_names_the_kind_and_the_key_that_shows_it(keys, expected):
    from deit_plugin.checkpoint import checkpoint_kind

    assert str(checkpoint_kind({k: torch.zeros(1) for k in keys})) == expected


def test_revise_keys_strips_the_ddp_prefix_as_mmengine_does():
    from deit_plugin.checkpoint import revise_keys

    state = {'module.backbone.w': 1, 'head.module.b': 2}
    assert list(revise_keys(state)) == ['backbone.w', 'head.module.b']
    assert list(revise_keys(state, [(r'^module\.backbone\.', '')])) == ['w', 'head.module.b']
