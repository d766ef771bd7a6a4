"""deit_plugin.teacher_cache.identity: what a cache was recorded for."""

from mmengine.config import Config

from deit_plugin.teacher_cache.identity import augmentation_identity, differences


def config(**model):
    return Config(
        dict(
            model=dict(type='deit_plugin.DistillationClassifier', **model),
            train_dataloader=dict(
                batch_size=4,
                sampler=dict(type='deit_plugin.SeededSampler', seed=3),
                dataset=dict(type='deit_plugin.SeededDataset', pipeline=[dict(type='Flip')]),
            ),
        )
    )


def test_the_teacher_input_size_is_part_of_the_augmentation_identity():
    plain = augmentation_identity(config())
    assert augmentation_identity(config(teacher_input_size=None)) == plain
    resized = augmentation_identity(config(teacher_input_size=256))
    assert resized != plain
    assert resized != augmentation_identity(config(teacher_input_size=224))


def test_a_resized_teacher_input_is_named_as_an_augmentation_difference():
    recorded = dict(augmentation=augmentation_identity(config()), batch_size=4)
    current = dict(augmentation=augmentation_identity(config(teacher_input_size=256)), batch_size=4)
    assert differences(recorded, current) == [
        f'augmentation ({recorded["augmentation"]!r} -> {current["augmentation"]!r})'
    ]
