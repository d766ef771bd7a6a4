"""The detection-transfer experiment: which runs, and each run's config and command.

Four RetinaNet runs per seed (``configs/det/retinanet_deit_tiny_fmnist_det.py``): the backbone
from the distilled student or from random initialisation (:data:`INITS`), on all training
images or on the first 10% (:data:`SUBSETS`), each with its own number of epochs and the same
schedule shape.
"""

import os.path as osp
import sys
from typing import List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_CFG = 'configs/det/retinanet_deit_tiny_fmnist_det.py'
SUBSETS = {'full': 'annotations/train.json', '10%': 'annotations/train_10pct.json'}
INITS = ('pretrained', 'random')


def run_name(init: str, subset: str, seed: int) -> str:
    """The work-dir (and config) name of one run, e.g. ``pretrained_10pct_seed0``."""
    return f'{init}_{"full" if subset == "full" else "10pct"}_seed{seed}'


def write_run_config(
    path: str,
    init: str,
    ann_file: str,
    backbone_ckpt: str,
    seed: int,
    epochs: int,
    lr: Optional[float] = None,
) -> None:
    """Write a config inheriting :data:`DET_CFG` with this run's initialisation, data and seed.

    Args:
        path (str): The config file to write.
        init (str): ``'pretrained'`` (the backbone from ``backbone_ckpt``) or ``'random'``
            (the base config's initialisation, the classification student's).
        ann_file (str): The training annotations, relative to the data root.
        backbone_ckpt (str): The exported backbone checkpoint (used by ``'pretrained'``).
        seed (int): ``randomness.seed``.
        epochs (int): Training epochs; the warm-up + cosine schedule, the validation and the
            checkpoint follow them.
        lr (float, optional): AdamW learning rate. Defaults to None (the base config's).
    """
    if init == 'pretrained':
        init_cfg = (
            f"dict(_delete_=True, type='Pretrained', checkpoint='{backbone_ckpt}', "
            "prefix='backbone.')"
        )
        backbone = f'dict(init_cfg={init_cfg})'
    else:
        backbone = 'dict()'  # the base config's random init (the classification student's)
    with open(path, 'w') as f:
        f.write(
            f"_base_ = ['{osp.join(ROOT, DET_CFG)}']\n"
            f'model = dict(backbone={backbone})\n'
            f"train_dataloader = dict(dataset=dict(ann_file='{ann_file}'))\n"
            f'randomness = dict(seed={seed})\n'
            f'max_epochs = {epochs}\n'
            'param_scheduler = [\n'
            "    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, "
            'end=100),\n'
            "    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, "
            f'end={epochs}, convert_to_iter_based=True)]\n'
            f'train_cfg = dict(max_epochs={epochs}, val_interval={epochs})\n'
            f'default_hooks = dict(checkpoint=dict(interval={epochs}))\n'
            + (f'optim_wrapper = dict(optimizer=dict(lr={lr!r}))\n' if lr else '')
        )


def train_command(cfg_path: str, run_dir: str, data: str, extra: List[str]) -> List[str]:
    """The ``tools/train.py`` command of one run (``extra``: e.g. ``['--threads', '1']``)."""
    return [
        sys.executable,
        'tools/train.py',
        cfg_path,
        '--work-dir',
        run_dir,
        *extra,
        '--cfg-options',
        f'train_dataloader.dataset.data_root={data}/',
        f'val_dataloader.dataset.data_root={data}/',
        f'val_evaluator.ann_file={data}/annotations/val.json',
    ]
