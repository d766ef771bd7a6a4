"""Channels-last memory format for convolutional models trained by an mmengine Runner."""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from deit_plugin.registry import HOOKS


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Put the model's 4-D weights in channels-last memory format before training/testing.

    mmengine has no memory-format option; for small convnets on CPU, channels-last convolutions
    are faster. Parameters keep their identity
    (``Module.to`` swaps ``.data``), so an optimizer built before ``before_run`` still holds
    them; weight init and checkpoint loading write into the existing tensors. The numbers
    computed are the same; only speed changes.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.to(memory_format=torch.channels_last)
