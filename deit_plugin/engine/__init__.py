from .channels_last_hook import ChannelsLastHook
from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .distillation_hook import DistillationHook, strip_teacher
from .optim_constructor import StudentOptimWrapperConstructor

__all__ = [
    'ChannelsLastHook', 'CPUAmpOptimWrapper', 'DistillationHook',
    'StudentOptimWrapperConstructor', 'strip_teacher'
]
