"""Train a model with mmengine's Runner (mmpretrain's ``tools/train.py`` interface).

python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v]
"""

import argparse
import logging
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

import deit_plugin  # noqa: F401  (registers the plugin; checkpoint loading under torch>=2.6)
from deit_plugin.checkpoint import check_checkpoint_file, resolve_auto_resume
from deit_plugin.checkpoint.fit import check_checkpoint_fits
from deit_plugin.utils import unwrap_model

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # run as `python tools/...`: tools._support from this checkout
    sys.path.insert(0, ROOT)
from tools._support.cli import positive_int  # noqa: E402
from tools._support.config_checks import check_config_file, check_train_config  # noqa: E402
from tools._support.dist_utils import prepare_cpu_distributed  # noqa: E402
from tools._support.workdir_lock import WorkDirLock  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a classifier (deit_plugin)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a path (or with "auto"), from the one the '
        "work dir's last_checkpoint file names (if that file is missing or broken: the newest "
        'valid epoch_N/iter_N.pth there, with a warning; none: start from scratch)',
    )
    parser.add_argument(
        '--allow-teacher-change',
        action='store_true',
        help='resume although the teacher checkpoint differs from the one the '
        'student checkpoint records (refused otherwise)',
    )
    parser.add_argument(
        '--allow-distillation-change',
        action='store_true',
        help='resume although the distillation mode, alpha or tau differ from '
        'those the student checkpoint records (refused otherwise)',
    )
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed-precision training: mmengine AmpOptimWrapper (float16) on '
        'CUDA, deit_plugin.CPUAmpOptimWrapper (bfloat16 autocast) without CUDA',
    )
    parser.add_argument(
        '--no-validate', action='store_true', help='do not evaluate checkpoints during training'
    )
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the real batch size (auto_scale_lr)',
    )
    parser.add_argument(
        '--no-pin-memory', action='store_true', help='turn off pin_memory of every dataloader'
    )
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='turn off persistent_workers of every dataloader',
    )
    parser.add_argument(
        '--threads',
        type=positive_int,
        default=None,
        help='torch CPU threads (torch.set_num_threads); 1 can beat 2 for tiny models',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value (xxx=yyy format)',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


AMP_WRAPPERS = ('OptimWrapper', 'AmpOptimWrapper', 'deit_plugin.CPUAmpOptimWrapper')


def set_amp_optim_wrapper(cfg) -> None:
    """``--amp``: mmengine's ``AmpOptimWrapper`` (float16, dynamic loss scale) where CUDA is
    available, ``deit_plugin.CPUAmpOptimWrapper`` (bfloat16 autocast) on a CPU-only machine,
    where mmengine's wrapper refuses to run."""
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_wrapper not in AMP_WRAPPERS:
        raise SystemExit(
            f'--amp replaces the optim wrapper type, but the config sets a custom '
            f'one ({optim_wrapper!r}); use one of {AMP_WRAPPERS} or drop --amp.'
        )
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        return
    cfg.optim_wrapper.type = 'deit_plugin.CPUAmpOptimWrapper'
    # float16 settings of a CUDA AmpOptimWrapper config have no meaning for bf16 on CPU
    for key in ('loss_scale', 'dtype', 'use_fsdp'):
        if cfg.optim_wrapper.pop(key, None) is not None:
            print(f'--amp on CPU (bfloat16 autocast): ignoring optim_wrapper.{key}')


def merge_args(cfg, args):
    """Merge command-line arguments into the config, as mmpretrain's train.py does."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        set_amp_optim_wrapper(cfg)
    if args.resume == 'auto':
        # mmengine follows <work_dir>/last_checkpoint blindly; check its target first
        latest = resolve_auto_resume(cfg.work_dir)
        if latest is None:
            print_log(
                f'--resume: no checkpoint to resume in {cfg.work_dir} (no last_checkpoint '
                f'file there), starting from scratch. Pass the same --work-dir as the '
                f'interrupted run, or --resume <checkpoint>.',
                logger='current',
                level=logging.WARNING,
            )
            cfg.resume = False
        else:
            cfg.resume = True
        cfg.load_from = latest
    elif args.resume is not None:
        check_checkpoint_file(args.resume)
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    for flag in ('allow_teacher_change', 'allow_distillation_change'):
        if not getattr(args, flag):
            continue
        hooks = [
            h
            for h in cfg.get('custom_hooks', None) or []
            if h.get('type') == 'deit_plugin.DistillationHook'
        ]
        if not hooks:
            raise SystemExit(
                f'--{flag.replace("_", "-")}: the config has no '
                "dict(type='deit_plugin.DistillationHook') in custom_hooks."
            )
        for hook in hooks:
            hook[flag] = True

    def set_default_dataloader_cfg(cfg, field):
        if cfg.get(field, None) is None:
            return
        dataloader_cfg = cfg[field]
        dataloader_cfg.setdefault('persistent_workers', dataloader_cfg.get('num_workers', 0) > 0)
        if args.no_pin_memory:
            dataloader_cfg['pin_memory'] = False
        if args.no_persistent_workers:
            dataloader_cfg['persistent_workers'] = False

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # after --cfg-options, so that persistent_workers follows a num_workers set there
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        set_default_dataloader_cfg(cfg, field)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    check_config_file(args.config)
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    check_train_config(cfg, args.config)
    check_batch_sizes(cfg)
    check_work_dir_writable(cfg.work_dir)
    prepare_cpu_distributed(cfg)
    if launcher_rank(args.launcher) != 0:
        return train(cfg)
    with WorkDirLock(cfg.work_dir):  # one run per work dir; released when this process ends
        return train(cfg)


def launcher_rank(launcher: str) -> int:
    """This process's global rank as the launcher's environment gives it (0 without one)."""
    variable = dict(pytorch='RANK', slurm='SLURM_PROCID', mpi='OMPI_COMM_WORLD_RANK')
    return int(os.environ.get(variable.get(launcher, ''), 0))


class WorkDirNotWritable(PermissionError, RuntimeError):
    """The work dir cannot be created or written."""


def check_batch_sizes(cfg) -> None:
    """Each dataloader's ``batch_size`` is a whole number of at least 1 (0 makes PyTorch's
    sampler fail deep inside the first epoch)."""
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field, None)
        if loader is None:
            continue
        size = loader.get('batch_size', 1)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f'{field}.batch_size must be a whole number of at least 1, got {size!r}: set '
                f'it in the config or with --cfg-options {field}.batch_size=<images per '
                f'process>.'
            )


def check_work_dir_writable(work_dir: str) -> None:
    """Create ``work_dir`` and write a file in it, so that a read-only location stops the run
    before the model is built, with one message, not in mmengine's logger setup."""
    probe = osp.join(work_dir, f'.write_test.{os.getpid()}')
    try:
        os.makedirs(work_dir, exist_ok=True)
        with open(probe, 'w'):
            pass
        os.remove(probe)
    except OSError as err:
        raise WorkDirNotWritable(
            f'work dir {osp.abspath(work_dir)} cannot be written ({err.strerror}): logs and '
            f'checkpoints go there. Pass --work-dir <a folder you can write> (or set work_dir '
            f'in the config).'
        ) from None


def check_load_checkpoint(runner: Runner) -> None:
    """Refuse a ``load_from`` or resumed checkpoint that does not fit the model, naming every
    mismatch (mmengine loads both non-strictly and only logs one)."""
    from mmengine.runner import find_latest_checkpoint
    from mmengine.runner.checkpoint import _load_checkpoint

    path = runner._load_from
    if path is None and runner._resume:
        path = find_latest_checkpoint(runner.work_dir)
    if path is None:
        return
    check_checkpoint_fits(
        unwrap_model(runner.model),
        path,
        _load_checkpoint(path, map_location='cpu'),
        resume=bool(runner._resume),
        logger=runner.logger,
    )


def train(cfg):
    runner = Runner.from_cfg(cfg)
    check_load_checkpoint(runner)
    runner.train()
    return runner


if __name__ == '__main__':
    main()
