import mmpretrain.models as mmp_models
import pytest
from mmpretrain.registry import MODELS as MMP_MODELS

import deit_plugin
from deit_plugin.registry import MODELS


def test_prefixed_name_builds_plugin_class_and_unprefixed_builds_mmpretrain():
    ours = MMP_MODELS.build(
        dict(
            type='deit_plugin.DistilledVisionTransformer',
            arch='deit-tiny',
            img_size=32,
            patch_size=16,
        )
    )
    theirs = MMP_MODELS.build(
        dict(type='DistilledVisionTransformer', arch='deit-tiny', img_size=32, patch_size=16)
    )
    assert type(ours) is deit_plugin.DistilledVisionTransformer
    assert type(theirs) is mmp_models.DistilledVisionTransformer
    assert type(ours) is not type(theirs)


def test_plugin_registers_in_its_own_scope_and_replaces_nothing_of_mmpretrain():
    assert MODELS.scope == 'deit_plugin'
    assert MODELS.parent is MMP_MODELS
    assert MMP_MODELS.children['deit_plugin'] is MODELS
    for name in ('DistilledVisionTransformer', 'DeiTClsHead', 'ImageClassifier'):
        assert MMP_MODELS.get(name) is getattr(mmp_models, name)
        assert MMP_MODELS.get(name).__module__.startswith('mmpretrain.')
    names = {
        'DistilledVisionTransformer',
        'DeiTDistillHead',
        'HardDistillationLoss',
        'SoftDistillationLoss',
        'DistillationClassifier',
    }
    assert names <= set(MODELS.module_dict)
    for name in names:
        assert MODELS.get(f'deit_plugin.{name}') is getattr(deit_plugin, name)


@pytest.mark.parametrize(
    'registry,name',
    [
        ('HOOKS', 'DistillationHook'),
        ('HOOKS', 'RandomStateHook'),
        ('HOOKS', 'AtomicCheckpointHook'),
        ('HOOKS', 'FiniteLossHook'),
        ('METRICS', 'DistillationMetric'),
        ('OPTIM_WRAPPER_CONSTRUCTORS', 'StudentOptimWrapperConstructor'),
    ],
)
def test_other_registries_resolve_prefixed_names_from_mmpretrain(registry, name):
    import mmpretrain.registry as mmp_registry

    assert getattr(mmp_registry, registry).get(f'deit_plugin.{name}') is getattr(deit_plugin, name)
