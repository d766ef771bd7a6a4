from .channels_last_hook import ChannelsLastHook
from .distillation_hook import DistillationHook, strip_teacher
from .layer_decay_constructor import DeiTLayerDecayOptimWrapperConstructor
from .optim_constructor import StudentOptimWrapperConstructor

__all__ = [
    'ChannelsLastHook', 'DistillationHook', 'StudentOptimWrapperConstructor', 'strip_teacher',
    'DeiTLayerDecayOptimWrapperConstructor'
]
