"""Checks of a training config file before mmengine reads it: one message per problem."""

import os.path as osp

#: What ``Runner.train`` needs; a config that lost one of them is incomplete.
TRAIN_KEYS = ('model', 'train_dataloader', 'train_cfg', 'optim_wrapper')


def check_config_file(path: str) -> None:
    """Raise for a config file that is missing or not valid Python (e.g. half-written).

    Raises:
        FileNotFoundError: no such file.
        SyntaxError: the file does not parse; the message names the line and the likely cause.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'config file {path} does not exist: check the path (configs are under configs/).'
        )
    if not path.endswith('.py'):
        return  # yaml/json configs are parsed by mmengine itself
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        compile(source, path, 'exec')
    except SyntaxError as e:
        raise SyntaxError(
            f'config file {path} is not valid Python (line {e.lineno}: {e.msg}): is it '
            f'complete? A file cut off while being written or copied ends like this; '
            f'restore it (e.g. from the copy mmengine saves in the work dir).'
        ) from None


def check_train_config(cfg, path: str) -> None:
    """Raise ``ValueError`` naming the settings a training config lacks."""
    missing = [k for k in TRAIN_KEYS if cfg.get(k, None) is None]
    if missing:
        raise ValueError(
            f'config {path} has no {", ".join(missing)}: training needs {", ".join(TRAIN_KEYS)}.'
            f' Is the file complete? Start from a full config (e.g. '
            f"_base_ = ['configs/fashion_mnist/deit_tiny_distill.py']) and override what "
            f'differs.'
        )
