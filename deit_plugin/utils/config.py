"""Config helpers shared by the model, the tools and the tests."""
import copy
from typing import Any, Mapping


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
