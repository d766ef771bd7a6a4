"""Config helpers shared by the model, the inferencer and the tools."""

import copy
import os.path as osp
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from mmengine.config import Config


def load_config(
    config: Union[str, Path, Config], cfg_options: Optional[dict] = None, what: str = 'config'
) -> Config:
    """The config that ``config`` names: a file, a ``<package>::<dir>/<file>.py`` name (as
    ``mmpretrain::deit/deit-tiny_4xb256_in1k.py`` or ``deit_plugin::fashion_mnist/...``, read by
    ``mmengine.hub.get_config``) or a loaded config (copied, so the caller's is not changed).

    Args:
        config (str | Path | Config): What to load.
        cfg_options (dict, optional): Settings merged in (``--cfg-options``). Defaults to None.
        what (str): What the config is, for the error message. Defaults to 'config'.

    Raises:
        FileNotFoundError: no such file.
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    elif '::' in str(config):
        from mmengine.hub import get_config

        cfg = get_config(str(config))
    else:
        config = str(config)
        if not osp.isfile(config):
            raise FileNotFoundError(
                f'{what} {config!r} does not exist: give a config file path or a '
                f"'<package>::<dir>/<file>.py' config name (e.g. "
                f"'mmpretrain::deit/deit-tiny_4xb256_in1k.py')."
            )
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def model_with_data_preprocessor(cfg: Mapping[str, Any]) -> dict:
    """A copy of ``cfg.model`` with the config's top-level ``data_preprocessor`` merged in.

    mmengine's Runner does the same when it builds the model: the model's own
    ``data_preprocessor`` keys win over the top-level ones.

    Args:
        cfg (Config | dict): A full config with a ``model`` (and maybe a ``data_preprocessor``).

    Returns:
        dict: The model config, ready for ``MODELS.build``.
    """
    model = cfg['model']
    model_cfg = copy.deepcopy(model.to_dict() if hasattr(model, 'to_dict') else dict(model))
    top = cfg.get('data_preprocessor')
    if top is not None:
        merged = dict(top)
        merged.update(model_cfg.get('data_preprocessor') or {})
        model_cfg['data_preprocessor'] = merged
    return model_cfg
