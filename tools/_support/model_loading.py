"""Build a trained classifier and a dataloader from a config, as tools/test.py's Runner does.

Shared by the analysis tools (``tools/analysis``): mmengine ``Config`` (``custom_imports``
honoured), the registries (``default_scope`` of the config), the top-level ``data_preprocessor``
merged into the model, the checkpoint loaded strictly (a checkpoint that does not fit names its
missing and unexpected keys), and the teacher's own checkpoint loaded for
``deit_plugin.DistillationClassifier``. A problem ends the tool (``SystemExit``) with its message.
"""

import copy
import os.path as osp
from typing import Iterable, List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from deit_plugin.checkpoint import CheckpointError, load_checkpoint_strictly
from deit_plugin.models.teacher_slot import get_teacher
from deit_plugin.utils.config import load_config as _load_config
from deit_plugin.utils.config import model_with_data_preprocessor

SPLITS = {'test': 'test_dataloader', 'val': 'val_dataloader', 'train': 'train_dataloader'}


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile`` plus ``--cfg-options``; sets the config's default registry scope."""
    try:
        cfg = _load_config(config, cfg_options)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return cfg


def load_model(cfg: Config, checkpoint: str, need_teacher: bool = False) -> torch.nn.Module:
    """The config's model with the checkpoint's weights (loaded strictly), in eval mode.

    Args:
        cfg (Config): From :func:`load_config`.
        checkpoint (str): An mmengine checkpoint (or a bare state dict) of the model.
        need_teacher (bool): Also load the teacher of a ``DistillationClassifier`` from its
            ``teacher_ckpt`` (student checkpoints do not contain it). Defaults to False.
    """
    from mmpretrain.registry import MODELS

    if not osp.isfile(checkpoint):
        raise SystemExit(f'checkpoint {checkpoint!r} does not exist.')
    model = MODELS.build(model_with_data_preprocessor(cfg))
    try:
        load_checkpoint_strictly(model, checkpoint)
    except CheckpointError as err:
        raise SystemExit(str(err)) from None
    if need_teacher:
        if get_teacher(model) is None:
            raise SystemExit(
                f'{type(model).__name__} has no teacher: set model.teacher and '
                f'model.teacher_ckpt (--cfg-options) to compare with one.'
            )
        model.load_teacher_checkpoint()
    return model.eval()


def build_loader(cfg: Config, split: str, max_images: int = 0):
    """The config's dataloader for ``split`` ('test', 'val' or 'train'; the train loader keeps
    its pipeline but is not shuffled). ``max_images`` keeps the first N images (0: all)."""
    if split not in SPLITS:
        raise SystemExit(f'--split must be one of {sorted(SPLITS)}, got {split!r}.')
    loader_cfg = copy.deepcopy(cfg.get(SPLITS[split]))
    if loader_cfg is None:
        raise SystemExit(f'the config has no {SPLITS[split]}.')
    loader_cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
    if max_images:
        loader_cfg['dataset']['indices'] = max_images
    loader_cfg.pop('persistent_workers', None)
    return Runner.build_dataloader(loader_cfg)


def batches(model: torch.nn.Module, loader, desc: str) -> Iterable[Tuple[torch.Tensor, List]]:
    """(preprocessed inputs, data samples) of every batch, with a tqdm progress bar."""
    from tqdm import tqdm

    for data in tqdm(loader, desc=desc, unit='batch'):
        data = model.data_preprocessor(data, False)
        yield data['inputs'], data['data_samples']
