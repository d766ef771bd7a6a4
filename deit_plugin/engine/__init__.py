from .atomic_checkpoint_hook import AtomicCheckpointHook
from .channels_last_hook import ChannelsLastHook
from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .distillation_hook import DistillationHook, strip_teacher
from .exact_resume_hook import ExactResumeHook
from .finite_loss_hook import FiniteLossHook, NonFiniteLossError
from .layer_decay_constructor import DeiTLayerDecayOptimWrapperConstructor
from .optim_constructor import StudentOptimWrapperConstructor
from .preemption_hook import PREEMPTED_EXIT_CODE, PreemptionHook, TrainingPreempted
from .random_state_hook import RandomStateHook
from .teacher_cache_hook import TeacherCacheHook

__all__ = [
    'AtomicCheckpointHook', 'ChannelsLastHook', 'CPUAmpOptimWrapper',
    'DeiTLayerDecayOptimWrapperConstructor', 'DistillationHook', 'ExactResumeHook',
    'FiniteLossHook', 'NonFiniteLossError', 'PREEMPTED_EXIT_CODE', 'PreemptionHook',
    'RandomStateHook', 'TeacherCacheHook', 'TrainingPreempted',
    'StudentOptimWrapperConstructor', 'strip_teacher'
]
