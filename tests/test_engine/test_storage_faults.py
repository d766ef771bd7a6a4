"""Storage faults and run hygiene: a checkpoint write the disk refuses (ENOSPC, EIO) stops the run
naming the path, the bytes needed and the free space, and leaves the previous checkpoint and
last_checkpoint valid; `--resume` (auto) steps over a last_checkpoint that names a missing or
truncated file; a resumed run refuses another teacher; one run per work dir."""

import builtins
import errno
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config
from reliability_utils import STUDENT_CFG, save_initialised_teacher
from test_preemption import PYTHONPATH, write_config
from tool_modules import load_tool

from deit_plugin.checkpoint import CheckpointWriteError
from deit_plugin.checkpoint import faults as checkpoint_faults
from deit_plugin.checkpoint.faults import resolve_auto_resume
from deit_plugin.engine.distillation_hook import TeacherChangedError

from tools._support.workdir_lock import WorkDirBusyError, WorkDirLock

train_tool = load_tool('train.py')


class _FailingFile:
    """Writes half of what it is given, then fails as a full or broken disk does."""

    def __init__(self, f, code):
        self._f, self._code = f, code

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        raise OSError(self._code, os.strerror(self._code))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.mark.slow
@pytest.mark.parametrize('code', [errno.ENOSPC, errno.EIO], ids=['ENOSPC', 'EIO'])
def test_a_failed_checkpoint_write_keeps_the_previous_one_and_says_why(tmp_path, monkeypatch, code):
    from mmengine.runner import Runner

    teacher = save_initialised_teacher(str(tmp_path / 'teacher.pth'))
    cfg = Config.fromfile(write_config(tmp_path / 'cfg.py', teacher))
    cfg.work_dir = work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.num_workers, cfg.train_dataloader.persistent_workers = 0, False
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=10)
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1  # mmengine would delete epoch_1 first
    target = osp.join(work_dir, 'epoch_2.pth')
    real_open = builtins.open

    def faulty_open(path, mode='r', *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return _FailingFile(f, code) if str(path) == target + '.part' else f

    monkeypatch.setattr(builtins, 'open', faulty_open)
    with pytest.raises(CheckpointWriteError) as e:
        Runner.from_cfg(cfg).train()
    monkeypatch.undo()
    time.sleep(1.1)
    message = str(e.value)
    epoch_1 = osp.join(work_dir, 'epoch_1.pth')
    assert message.startswith(
        f'[Errno {code}] writing checkpoint {target} failed: {os.strerror(code)}.'
    )
    needed = int(re.search(r'It needs (\d+) bytes', message).group(1))
    assert abs(needed - osp.getsize(epoch_1)) < 0.01 * osp.getsize(epoch_1)
    free = int(re.search(r'; (\d+) bytes \(.*\) free on its file system', message).group(1))
    assert abs(free - os.statvfs(work_dir).f_bavail * os.statvfs(work_dir).f_frsize) < 2**30
    assert 'previous checkpoint and last_checkpoint are unchanged' in message
    # the state on disk: epoch_1 complete and named by last_checkpoint, no partial file
    assert sorted(p for p in os.listdir(work_dir) if 'pth' in p) == ['epoch_1.pth']
    assert open(osp.join(work_dir, 'last_checkpoint')).read().strip() == epoch_1
    assert torch.load(epoch_1, map_location='cpu')['meta']['epoch'] == 1


def fake_checkpoints(work_dir, names):
    os.makedirs(work_dir, exist_ok=True)
    for i, name in enumerate(names):
        path = osp.join(work_dir, name)
        torch.save({'meta': {'iter': i}, 'state_dict': {'w': torch.zeros(100)}}, path)
        os.utime(path, (1000 + i, 1000 + i))  # mtime order = list order
    return [osp.join(work_dir, n) for n in names]


def truncate(path):
    with open(path, 'r+b') as f:
        f.truncate(osp.getsize(path) // 2)


def test_resume_auto_steps_over_a_truncated_or_missing_pointer_target(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(checkpoint_faults, 'print_log', lambda msg, **kwargs: warnings.append(msg))
    work = str(tmp_path)
    epoch_1, iter_6, epoch_2 = fake_checkpoints(work, ['epoch_1.pth', 'iter_6.pth', 'epoch_2.pth'])
    fake_checkpoints(work, ['teacher.pth'])  # not a training checkpoint: never chosen
    pointer = osp.join(work, 'last_checkpoint')
    with open(pointer, 'w') as f:
        f.write(epoch_2)
    assert resolve_auto_resume(work) == epoch_2 and not warnings  # the normal case
    truncate(epoch_2)
    truncate(iter_6)
    assert resolve_auto_resume(work) == epoch_1
    assert f'{pointer} cannot be used (checkpoint {epoch_2} is truncated' in warnings[-1]
    assert f'Resuming from {epoch_1}, the newest valid checkpoint' in warnings[-1]
    assert f'also skipped {iter_6} (checkpoint {iter_6} is truncated)' in warnings[-1]
    with open(pointer, 'w') as f:
        f.write(osp.join(work, 'epoch_3.pth'))  # the write of epoch_3 never completed
    assert resolve_auto_resume(work) == epoch_1
    assert 'epoch_3.pth does not exist' in warnings[-1]
    # tools/train.py --resume uses it
    args = train_tool.parse_args([STUDENT_CFG, '--work-dir', work, '--resume'])
    cfg = train_tool.merge_args(Config.fromfile(STUDENT_CFG), args)
    assert cfg.resume is True and cfg.load_from == epoch_1
    truncate(epoch_1)
    with pytest.raises(FileNotFoundError, match='epoch_3.pth does not exist'):
        resolve_auto_resume(work)  # nothing valid left: the original error
    os.remove(pointer)
    assert resolve_auto_resume(work) is None  # no pointer, nothing valid: start fresh


@pytest.mark.slow
def test_resume_with_another_teacher_is_refused_unless_allowed(tmp_path):
    teacher_a = save_initialised_teacher(str(tmp_path / 'teacher_a.pth'), seed=1)
    teacher_b = save_initialised_teacher(str(tmp_path / 'teacher_b.pth'), seed=2)
    from deit_plugin.engine.distillation_hook import teacher_fingerprint

    fp_a, fp_b = (teacher_fingerprint(torch.load(p)['state_dict']) for p in (teacher_a, teacher_b))
    config = write_config(tmp_path / 'cfg.py', teacher_a)
    work = str(tmp_path / 'work')
    opts = [
        '--cfg-options',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'train_cfg.val_interval=10',
    ]
    train_tool.main([config, '--work-dir', work, *opts, 'train_cfg.max_epochs=1'])
    time.sleep(1.1)
    recorded = torch.load(osp.join(work, 'epoch_1.pth'))['meta']['deit_plugin']
    assert recorded['teacher_fingerprint'] == fp_a and recorded['teacher_ckpt'] == teacher_a
    resume = [
        config,
        '--work-dir',
        work,
        '--resume',
        *opts,
        'train_cfg.max_epochs=2',
        f'model.teacher_ckpt={teacher_b}',
    ]
    with pytest.raises(TeacherChangedError) as e:
        train_tool.main(resume)
    time.sleep(1.1)
    assert (
        f'{osp.join(work, "epoch_1.pth")} records teacher {teacher_a} with fingerprint '
        f'{fp_a}; this run loaded {teacher_b} with fingerprint {fp_b}'
    ) in str(e.value)
    assert '--allow-teacher-change' in str(e.value)
    assert not osp.exists(osp.join(work, 'epoch_2.pth'))
    train_tool.main(resume[:3] + ['--allow-teacher-change'] + resume[3:])
    time.sleep(1.1)
    assert (
        torch.load(osp.join(work, 'epoch_2.pth'))['meta']['deit_plugin']['teacher_fingerprint']
        == fp_b
    )


def test_one_run_per_work_dir_and_a_killed_holder_frees_it(tmp_path):
    work = str(tmp_path / 'work')
    holder = subprocess.Popen(
        [
            sys.executable,
            '-c',
            'import sys, time\n'
            'from tools._support.workdir_lock import WorkDirLock\n'
            f'WorkDirLock({work!r}).acquire()\nprint("locked", flush=True)\ntime.sleep(300)',
        ],
        env=dict(os.environ, PYTHONPATH=PYTHONPATH),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(
            WorkDirBusyError,
            match=f'work dir {work} is in use by another '
            f'training run \\(PID {holder.pid}, lock {work}/.train.lock\\): '
            f'wait for it to finish or stop it, or pass another --work-dir',
        ):
            WorkDirLock(work).acquire()
        with pytest.raises(WorkDirBusyError, match=f'PID {holder.pid}'):
            train_tool.main([STUDENT_CFG, '--work-dir', work])  # refused before building
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    with WorkDirLock(work) as lock:  # the kernel dropped the killed process's lock
        assert open(lock.path).read().strip() == str(os.getpid())
        with pytest.raises(WorkDirBusyError, match=f'PID {os.getpid()}'):
            WorkDirLock(work).acquire()  # also within one process
    WorkDirLock(work).acquire().release()
