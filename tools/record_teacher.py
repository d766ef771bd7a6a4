"""Record a teacher's outputs for the exact batches a training run of CONFIG will see.

    python tools/record_teacher.py CONFIG --epochs E --out DIR [--topk K] [--chunk-iters N]
        [--threads T] [--cfg-options k=v ...]
    # for a run of N processes: one recording process per training process
    python -m torch.distributed.run --nproc_per_node=N tools/record_teacher.py CONFIG \
        --epochs E --out DIR --launcher pytorch

Then train with ``model.teacher_cache=dict(dir=DIR)`` and ``deit_plugin.TeacherCacheHook``
(docs/user_guides/teacher_cache.md). A killed pass continues where it stopped when run again.
"""

import argparse
import os
import os.path as osp
import sys

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger

import deit_plugin  # noqa: F401  (registers the plugin)
from deit_plugin.teacher_cache import record_teacher

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # run as `python tools/...`: tools._support from this checkout
    sys.path.insert(0, ROOT)
from tools._support.cli import positive_int  # noqa: E402
from tools._support.config_checks import check_config_file  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Record teacher outputs (teacher cache)')
    parser.add_argument(
        'config', help='the training config (distillation model, seeded training dataloader)'
    )
    parser.add_argument('--epochs', type=int, required=True, help='epochs to record')
    parser.add_argument('--out', required=True, help='cache directory')
    parser.add_argument(
        '--topk',
        type=int,
        default=10,
        help='logits kept per sample (all, exactly, if classes <= K)',
    )
    parser.add_argument(
        '--chunk-iters',
        type=int,
        default=500,
        help='batches per chunk file (what a killed pass loses at most)',
    )
    parser.add_argument('--threads', type=positive_int, default=None, help='torch CPU threads')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch'],
        default='none',
        help='pytorch: one process per training process (torchrun)',
    )
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    check_config_file(args.config)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='nccl' if torch.cuda.is_available() else 'gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
        )
    logger = MMLogger.get_instance('record_teacher', log_level='INFO')
    result = record_teacher(
        cfg,
        args.out,
        args.epochs,
        topk=args.topk,
        chunk_iters=args.chunk_iters,
        progress=not args.no_progress,
        logger=logger,
    )
    rank, world = get_dist_info()
    if rank == 0:
        per = result['bytes'] / max(result['rows'], 1)
        print(
            f'{args.out}: {result["rows"]} sample-epochs on rank 0 in {result["bytes"]} bytes '
            f'= {per:.1f} bytes per sample-epoch (K={args.topk}, '
            f'{result["manifest"]["num_classes"]} classes)'
        )
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()
    return result


if __name__ == '__main__':
    main()
