"""deit_plugin: DeiT with distillation through attention, for mmpretrain/mmengine.

Importing the package registers its classes under the ``deit_plugin`` registry scope (a child of
mmpretrain's) and makes mmengine checkpoints loadable under torch>=2.6 (see
:mod:`deit_plugin.checkpoint_compat`).
"""
from .checkpoint_compat import allow_mmengine_checkpoint_globals
from .version import __version__

allow_mmengine_checkpoint_globals()

from .engine import (ChannelsLastHook, CPUAmpOptimWrapper, DistillationHook,  # noqa: E402
                     StudentOptimWrapperConstructor)
from .evaluation import DistillationMetric  # noqa: E402
from .models import (DeiTDistillHead, DistillationClassifier,  # noqa: E402
                     DistilledVisionTransformer, HardDistillationLoss, SoftDistillationLoss)

__all__ = [
    '__version__', 'DistilledVisionTransformer', 'DeiTDistillHead', 'HardDistillationLoss',
    'SoftDistillationLoss', 'DistillationClassifier', 'DistillationHook',
    'StudentOptimWrapperConstructor', 'ChannelsLastHook', 'CPUAmpOptimWrapper',
    'DistillationMetric', 'allow_mmengine_checkpoint_globals'
]
