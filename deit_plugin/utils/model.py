"""The model inside mmengine's wrappers."""

import torch.nn as nn
from mmengine.model import is_model_wrapper


def unwrap_model(model: nn.Module) -> nn.Module:
    """``model.module`` for mmengine's model wrappers (``MMDistributedDataParallel``, FSDP,
    ...), else ``model`` itself."""
    return model.module if is_model_wrapper(model) else model
