from .distillation_hook import DistillationHook, strip_teacher
from .optim_constructor import StudentOptimWrapperConstructor

__all__ = ['DistillationHook', 'StudentOptimWrapperConstructor', 'strip_teacher']
