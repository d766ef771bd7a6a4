"""Registries of deit_plugin: children of mmpretrain's, in the scope ``deit_plugin``.

mmpretrain already registers ``DistilledVisionTransformer`` and ``DeiTClsHead``; registering ours
into mmpretrain's registries would either fail ("already registered") or, with ``force=True``,
replace mmpretrain's class for every user. Child registries keep both: ``type='deit_plugin.X'``
builds ours, an unprefixed ``type='X'`` under ``default_scope='mmpretrain'`` still builds
mmpretrain's. mmengine imports ``f'{scope}.registry'`` when it switches to this scope, so this
module must keep its name.
"""

from mmengine.registry import Registry
from mmpretrain.registry import DATA_SAMPLERS as MMPRETRAIN_DATA_SAMPLERS
from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS
from mmpretrain.registry import HOOKS as MMPRETRAIN_HOOKS
from mmpretrain.registry import METRICS as MMPRETRAIN_METRICS
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMPRETRAIN_OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.registry import OPTIM_WRAPPERS as MMPRETRAIN_OPTIM_WRAPPERS
from mmpretrain.registry import TRANSFORMS as MMPRETRAIN_TRANSFORMS

MODELS = Registry(
    'model', parent=MMPRETRAIN_MODELS, scope='deit_plugin', locations=['deit_plugin.models']
)
HOOKS = Registry(
    'hook', parent=MMPRETRAIN_HOOKS, scope='deit_plugin', locations=['deit_plugin.engine']
)
METRICS = Registry(
    'metric', parent=MMPRETRAIN_METRICS, scope='deit_plugin', locations=['deit_plugin.evaluation']
)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMPRETRAIN_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='deit_plugin',
    locations=['deit_plugin.engine'],
)
OPTIM_WRAPPERS = Registry(
    'optim_wrapper',
    parent=MMPRETRAIN_OPTIM_WRAPPERS,
    scope='deit_plugin',
    locations=['deit_plugin.engine'],
)

DATASETS = Registry(
    'dataset', parent=MMPRETRAIN_DATASETS, scope='deit_plugin', locations=['deit_plugin.datasets']
)
DATA_SAMPLERS = Registry(
    'data sampler',
    parent=MMPRETRAIN_DATA_SAMPLERS,
    scope='deit_plugin',
    locations=['deit_plugin.datasets'],
)

TRANSFORMS = Registry(
    'transform',
    parent=MMPRETRAIN_TRANSFORMS,
    scope='deit_plugin',
    locations=['deit_plugin.datasets'],
)

__all__ = [
    'MODELS',
    'HOOKS',
    'METRICS',
    'OPTIM_WRAPPER_CONSTRUCTORS',
    'OPTIM_WRAPPERS',
    'DATASETS',
    'DATA_SAMPLERS',
    'TRANSFORMS',
]
