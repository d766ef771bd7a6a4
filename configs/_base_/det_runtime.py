# mmdet's runtime with the plugin's safe training, as default_runtime.py adds it to mmpretrain's:
# atomic checkpoints, exact resume, a checkpoint and exit status 75 on SIGTERM/SIGUSR1, a stop
# at a NaN/Inf loss. For the detection configs.
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['deit_plugin'], allow_failed_imports=False)
default_hooks = dict(
    checkpoint=dict(type='deit_plugin.AtomicCheckpointHook'),
    resume=dict(type='deit_plugin.ResumeHook'),
    safe_stop=dict(type='deit_plugin.SafeStopHook'),
)
