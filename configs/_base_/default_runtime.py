# mmpretrain's runtime (logging, per-epoch checkpoints, environment) with the plugin imported and
# training that survives being stopped (docs/user_guides/resume_and_failures.md):
# - checkpoints written to a temporary name and then renamed: a killed run never leaves a
#   broken one (AtomicCheckpointHook);
# - resumes that continue exactly: random states, data seed and, with per-sample seeded data
#   loading, the position inside the epoch (ResumeHook);
# - SIGTERM/SIGUSR1 (a cluster's pre-emption or time limit): a checkpoint after the current
#   iteration and exit status 75; a NaN/Inf loss stops the run before it is saved (SafeStopHook).
# For the ImageNet, own-dataset and detection (det_runtime.py) configs.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['deit_plugin'], allow_failed_imports=False)
default_hooks = dict(
    checkpoint=dict(type='deit_plugin.AtomicCheckpointHook'),
    resume=dict(type='deit_plugin.ResumeHook'),
    safe_stop=dict(type='deit_plugin.SafeStopHook'),
)
