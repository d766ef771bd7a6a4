"""Optimizer construction that never sees the teacher."""
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor

from deit_plugin.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class StudentOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` over every child of the model except ``teacher``.

    mmengine's default constructor puts all parameters, frozen ones included, into the
    optimizer's parameter groups; the teacher's weights must never be there. Parameter names
    keep their prefixes (``backbone.pos_embed``, ...), so ``paramwise_cfg`` custom keys work as
    usual.
    """

    def __call__(self, model: nn.Module):
        if is_model_wrapper(model):
            model = model.module
        student = nn.ModuleDict(
            {name: child for name, child in model.named_children() if name != 'teacher'})
        return super().__call__(student)
