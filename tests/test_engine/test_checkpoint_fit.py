"""``load_from`` and ``--resume`` checkpoints are checked against the model before training
(deit_plugin.checkpoint.fit, called by tools/train.py)."""

import logging

import pytest
from model_builders import student

from deit_plugin.checkpoint.fit import CheckpointMismatchError, check_checkpoint_fits


@pytest.fixture(scope='module')
def model():
    return student()


def test_a_student_checkpoint_fits_without_teacher_keys(model):
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('teacher.')}
    for resume in (False, True):
        check_checkpoint_fits(model, 'a.pth', {'state_dict': state}, resume=resume)
    # DDP's module. prefix is removed, as mmengine's loader does
    check_checkpoint_fits(
        model, 'a.pth', {'state_dict': {f'module.{k}': v for k, v in state.items()}}, False
    )


def test_every_mismatch_is_named(model):
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('teacher.')}
    state['backbone.cls_token'] = state['backbone.cls_token'][..., :8]
    del state['head.layers.head_dist.bias']
    state['neck.extra'] = state['head.layers.head.bias']
    with pytest.raises(CheckpointMismatchError) as e:
        check_checkpoint_fits(model, 'w.pth', {'state_dict': state}, resume=False)
    message = str(e.value)
    assert (
        'differ in shape (1): backbone.cls_token (1, 1, 8) in the checkpoint, (1, 1, 16)' in message
    )
    assert 'missing from the checkpoint (1): head.layers.head_dist.bias' in message
    assert 'not in the model (1): neck.extra' in message


def test_head_of_another_class_count_loads_for_fine_tuning_but_not_on_resume(model, caplog):
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('teacher.')}
    for name in ('head', 'head_dist'):
        state[f'head.layers.{name}.weight'] = state[f'head.layers.{name}.weight'].repeat(3, 1)
        state[f'head.layers.{name}.bias'] = state[f'head.layers.{name}.bias'].repeat(3)
    logger = logging.getLogger('deit_plugin_fit_test')
    with caplog.at_level(logging.WARNING, logger='deit_plugin_fit_test'):
        check_checkpoint_fits(model, 'in1k.pth', {'state_dict': state}, resume=False, logger=logger)
    assert '(12 in the checkpoint, 4 in the model) and keep their initialisation' in caplog.text
    with pytest.raises(CheckpointMismatchError, match=r'head.layers.head.weight \(12, 16\)'):
        check_checkpoint_fits(model, 'in1k.pth', {'state_dict': state}, resume=True)


def test_position_embedding_of_another_length_is_resized_not_refused(model):
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('teacher.')}
    state['backbone.pos_embed'] = state['backbone.pos_embed'][:, :10]
    check_checkpoint_fits(model, 'a.pth', {'state_dict': state}, resume=False)
    state['backbone.pos_embed'] = state['backbone.pos_embed'][..., :8]  # another width
    with pytest.raises(CheckpointMismatchError, match='backbone.pos_embed'):
        check_checkpoint_fits(model, 'a.pth', {'state_dict': state}, resume=False)


def test_official_layout_is_refused_with_the_converter(model):
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('teacher.')}
    with pytest.raises(
        CheckpointMismatchError,
        match=r'holds no mmengine state dict.*under '
        r"'model'.*deit_to_plugin.py",
    ):
        check_checkpoint_fits(model, 'deit.pth', {'model': state}, resume=False)
