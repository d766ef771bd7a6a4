# mmpretrain's runtime (logging, per-epoch checkpoints, environment) with the plugin imported and
# checkpoints written to a temporary name and then renamed: a killed run never leaves a broken
# one. For the ImageNet configs.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['deit_plugin'], allow_failed_imports=False)
default_hooks = dict(checkpoint=dict(type='deit_plugin.AtomicCheckpointHook'))
