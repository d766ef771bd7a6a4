"""deit_plugin: DeiT with distillation through attention, for mmpretrain/mmengine.

Importing the package registers its classes under the ``deit_plugin`` registry scope (a child of
mmpretrain's), makes mmengine checkpoints loadable under torch>=2.6 (see
:mod:`deit_plugin.checkpoint.compat`) and reports truncated or unreadable checkpoint files by
path (see :mod:`deit_plugin.checkpoint.checks`), and names `make env-det` when detection meets
an mmcv without compiled ops (see :mod:`deit_plugin.mmcv_ops`).

It also lets mmengine resolve ``deit_plugin::<dir>/<file>.py`` config names (see
:mod:`deit_plugin.config_package`): import ``deit_plugin`` before parsing such a config.
"""

from .checkpoint import allow_mmengine_checkpoint_globals, install_checkpoint_file_checks
from .config_package import register_config_package
from .mmcv_ops import install_missing_ops_message
from .version import __version__

register_config_package()
allow_mmengine_checkpoint_globals()
install_checkpoint_file_checks()

from .datasets import FashionMNISTIdx  # noqa: E402
from .engine import (  # noqa: E402
    AtomicCheckpointHook,
    ChannelsLastHook,
    CPUAmpOptimWrapper,
    DeiTLayerDecayOptimWrapperConstructor,
    DistillationHook,
    FiniteLossHook,
    RandomStateHook,
    ResumeHook,
    SafeStopHook,
    StudentOptimWrapperConstructor,
    TeacherCacheHook,
)
from .evaluation import DistillationMetric  # noqa: E402
from .models import (  # noqa: E402
    DeiTDistillHead,
    DistillationClassifier,
    DistilledVisionTransformer,
    HardDistillationLoss,
    SimpleFeaturePyramid,
    SoftDistillationLoss,
)

# after the imports above (mmpretrain adds finders of its own): asked last
install_missing_ops_message()

__all__ = [
    '__version__',
    'DistilledVisionTransformer',
    'DeiTDistillHead',
    'HardDistillationLoss',
    'SoftDistillationLoss',
    'DistillationClassifier',
    'DistillationHook',
    'StudentOptimWrapperConstructor',
    'ChannelsLastHook',
    'CPUAmpOptimWrapper',
    'DistillationMetric',
    'allow_mmengine_checkpoint_globals',
    'AtomicCheckpointHook',
    'FiniteLossHook',
    'RandomStateHook',
    'install_checkpoint_file_checks',
    'FashionMNISTIdx',
    'SimpleFeaturePyramid',
    'DeiTLayerDecayOptimWrapperConstructor',
    'register_config_package',
    'TeacherCacheHook',
    'ResumeHook',
    'SafeStopHook',
]
