from .atomic_checkpoint_hook import AtomicCheckpointHook
from .channels_last_hook import ChannelsLastHook
from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .distillation_hook import DistillationHook, strip_teacher
from .layer_decay_constructor import DeiTLayerDecayOptimWrapperConstructor
from .optim_constructor import StudentOptimWrapperConstructor
from .resume_hook import ExactResumeHook, RandomStateHook, ResumeHook
from .safe_stop_hook import (
    PREEMPTED_EXIT_CODE,
    FiniteLossHook,
    NonFiniteLossError,
    PreemptionHook,
    SafeStopHook,
    TrainingPreempted,
)
from .teacher_cache_hook import TeacherCacheHook

__all__ = [
    'AtomicCheckpointHook',
    'ChannelsLastHook',
    'CPUAmpOptimWrapper',
    'DeiTLayerDecayOptimWrapperConstructor',
    'DistillationHook',
    'NonFiniteLossError',
    'PREEMPTED_EXIT_CODE',
    'ResumeHook',
    'SafeStopHook',
    'TeacherCacheHook',
    'TrainingPreempted',
    'StudentOptimWrapperConstructor',
    'strip_teacher',
    # deprecated names
    'ExactResumeHook',
    'FiniteLossHook',
    'PreemptionHook',
    'RandomStateHook',
]
