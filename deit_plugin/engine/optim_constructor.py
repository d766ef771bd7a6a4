"""Optimizer construction that never sees the teacher."""

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor

from deit_plugin.models.teacher_slot import without_teacher
from deit_plugin.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class StudentOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` over every child of the model except the teacher.

    mmengine's default constructor puts all parameters, frozen ones included, into the
    optimizer's parameter groups; the teacher's weights must never be there. Parameter names
    keep their prefixes (``backbone.pos_embed``, ...), so ``paramwise_cfg`` custom keys work as
    usual.
    """

    def __call__(self, model: nn.Module):
        return super().__call__(without_teacher(model))
