"""mmpretrain's model zoo as teachers: one ImageNet-1k classifier config per family, given as
``teacher='mmpretrain::<family>/<config>.py'`` to a DeiT-Ti⚗ student at 224 px, with a
random-weight checkpoint in the layout the model zoo distributes (``meta`` + ``state_dict`` with
``backbone.``/``head.`` keys): build, load ``teacher_ckpt``, one training step, teacher
unchanged. Plus the paper's RegNetY-16GF through mmpretrain's ``TimmClassifier``.

Which config stands for a family (the rule, applied by :func:`family_config`): among the
models of the family's ``metafile.yml`` (its model zoo) with an ImageNet-1k image-classification
result and a config in the family directory itself (not ``benchmarks/``, the linear-probe and
fine-tune evaluations of self-supervised methods), the one with the fewest parameters (as the
metafile states them) whose config is an ``ImageClassifier`` predicting 1000 classes (ties:
config name order). Directories without such a model are not classifier families
(self-supervised pre-training, retrieval, multi-modal).

A plain ``pytest`` runs :data:`CI_FAMILIES` (CNNs, ViTs, a hierarchical transformer, a mobile net
and the families that needed work: SwinV2, EVA-02, Inception-v3, ViG), RepMLP at 256 px and
RegNetY-16GF; ``make test`` (and so CI) passes ``--zoo-all``, which runs every family (106 s
alone on 2 cores) and checks that :data:`CI_FAMILIES` still follows the rule.
"""

import os
import os.path as osp

import mmpretrain
import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from deit_plugin.models.distill_classifier import resolve_teacher
from deit_plugin.models.teacher_slot import teacher_fingerprint

ZOO = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]

#: family -> its config by the rule above (checked under --zoo-all)
CI_FAMILIES = {
    'resnet': 'resnet/resnet34_8xb32_in1k.py',
    'convnext_v2': 'convnext_v2/convnext-v2-atto_32xb32_in1k.py',
    'deit': 'deit/deit-tiny_4xb256_in1k.py',
    'swin_transformer': 'swin_transformer/swin-tiny_16xb64_in1k.py',
    'mobilenet_v2': 'mobilenet_v2/mobilenet-v2_8xb32_in1k.py',
    'swin_transformer_v2': 'swin_transformer_v2/swinv2-tiny-w16_16xb64_in1k-256px.py',
    'eva02': 'eva02/eva02-tiny-p14_in1k.py',
    'inception_v3': 'inception_v3/inception-v3_8xb32_in1k.py',
    'vig': 'vig/vig-tiny_8xb128_in1k.py',
}

#: families whose teacher cannot run on the student's 224 px batch: the size to give as
#: model.teacher_input_size (the message names it; listed in own_config.md)
NEEDS_INPUT_SIZE = {
    'swin_transformer_v2': 256,  # windows of 16 do not fit the 14x14 map of a 224 px input
}

#: families that cannot teach a DeiT: family -> pattern of the one message they get
REFUSED = {
    # its model base in mmpretrain 1.2.0's wheel is a lazy-import config, which mmengine 0.10.7
    # refuses inside an old-style chain
    'replknet': r"teacher config 'mmpretrain::replknet/.*' cannot be read by mmengine .*give "
    r'the teacher as a model dict',
}


def zoo_models(family: str):
    """(parameters, config) of the family's model-zoo entries (``metafile.yml``) with an
    ImageNet-1k image-classification result, fewest parameters first."""
    path = osp.join(ZOO, family, 'metafile.yml')
    if not osp.isfile(path):
        return []
    with open(path) as f:
        models = yaml.safe_load(f).get('Models') or []
    found = []
    for entry in models:
        results = entry.get('Results') or []
        params = (entry.get('Metadata') or {}).get('Parameters')
        config = entry.get('Config') or ''
        if (
            params
            and osp.dirname(config) == f'configs/{family}'
            and any(
                r.get('Dataset') == 'ImageNet-1k' and r.get('Task') == 'Image Classification'
                for r in results
            )
        ):
            found.append((int(params), config[len('configs/') :]))
    return sorted(found)


def is_1k_image_classifier(config: str) -> bool:
    if not osp.isfile(osp.join(ZOO, config)):
        return False
    try:
        model = Config.fromfile(osp.join(ZOO, config)).get('model') or {}
    except RuntimeError:  # mmengine cannot read it: the sweep shows it (see REFUSED)
        return True
    return (
        model.get('type') in ('ImageClassifier', 'mmpretrain.ImageClassifier')
        and (model.get('head') or {}).get('num_classes', 1000) == 1000
    )


def family_config(family: str):
    """The family's config by the module's rule, or None for a non-classifier directory."""
    for _, config in zoo_models(family):
        if is_1k_image_classifier(config):
            return config
    return None


def families():
    return sorted(d for d in os.listdir(ZOO) if osp.isfile(osp.join(ZOO, d, 'metafile.yml')))


def pytest_generate_tests(metafunc):
    if 'family' in metafunc.fixturenames:
        every = metafunc.config.getoption('--zoo-all', default=False)
        metafunc.parametrize('family', families() if every else sorted(CI_FAMILIES))


def save_zoo_checkpoint(teacher: torch.nn.Module, path: str, config: str, key='state_dict') -> dict:
    """Random weights (parameters halved: not the ones the teacher was built with) in the
    model zoo's layout; returns them."""
    params = {id(p) for p in teacher.parameters()}
    state = {
        k: (v.detach() * 0.5 if id(v) in params else v.detach())
        for k, v in teacher.state_dict(keep_vars=True).items()
    }
    meta = {'mmpretrain_version': mmpretrain.__version__, 'config': config}
    torch.save({'meta': meta, key: state}, path)
    return state


def deit_ti_student(teacher, teacher_ckpt, **options):
    return MODELS.build(
        dict(
            type='deit_plugin.DistillationClassifier',
            backbone=dict(
                type='deit_plugin.DistilledVisionTransformer',
                arch='deit-tiny',
                img_size=224,
                patch_size=16,
            ),
            head=dict(type='deit_plugin.DeiTDistillHead', num_classes=1000, in_channels=192),
            teacher=teacher,
            teacher_ckpt=teacher_ckpt,
            data_preprocessor=dict(num_classes=1000, mean=MEAN, std=STD, to_rgb=True),
            **options,
        )
    )


def one_training_step(model) -> dict:
    optim = build_optim_wrapper(
        model,
        dict(
            constructor='deit_plugin.StudentOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-4),
        ),
    )
    g = torch.Generator().manual_seed(0)
    data = dict(
        inputs=[
            torch.randint(0, 256, (3, 224, 224), generator=g, dtype=torch.uint8) for _ in range(2)
        ],
        data_samples=[DataSample().set_gt_label(label) for label in (3, 917)],
    )
    model.train()
    return model.train_step(data, optim)


def student_with_zoo_checkpoint(teacher: str, ckpt: str, key='state_dict', **options):
    """The student, and its teacher's weights saved as a model-zoo checkpoint at ``ckpt``
    (one build of the teacher: its own random weights, halved)."""
    model = deit_ti_student(teacher, ckpt, **options)
    state = save_zoo_checkpoint(model.teacher, ckpt, teacher, key)
    return model, state


def teaches(model, state: dict) -> None:
    """Load the checkpoint, train one step: the teacher is unchanged."""
    model.init_weights()
    model.load_teacher_checkpoint()
    loaded = model.teacher.state_dict()
    key = next(k for k, v in loaded.items() if k in state and v.is_floating_point())
    assert torch.equal(loaded[key], state[key])  # the checkpoint's weights, not the built ones
    losses = one_training_step(model)
    assert torch.isfinite(losses['loss_cls']) and torch.isfinite(losses['loss_dist'])
    assert model.check_teacher_unchanged() == model.teacher_fingerprint
    assert not model.teacher.training
    assert model.teacher_fingerprint == teacher_fingerprint(
        {k: v for k, v in state.items() if k in model._teacher_defined}
    )


@pytest.mark.slow
def test_zoo_family_teaches_a_deit_ti_student_or_is_refused_with_the_reason(
    family, request, tmp_path
):
    config = CI_FAMILIES.get(family)
    if request.config.getoption('--zoo-all', default=False) or config is None:
        rule = family_config(family)
        if rule is None:
            pytest.skip(f'{family}: no ImageNet-1k ImageClassifier config')
        if family in CI_FAMILIES:
            assert rule == CI_FAMILIES[family], 'CI_FAMILIES no longer follows the rule'
        config = rule
    teacher = f'mmpretrain::{config}'
    ckpt = str(tmp_path / 'teacher.pth')
    if family in REFUSED:
        with pytest.raises((ValueError, RuntimeError), match=REFUSED[family]):
            teaches(*student_with_zoo_checkpoint(teacher, ckpt))
        return
    size = NEEDS_INPUT_SIZE.get(family)
    model, state = student_with_zoo_checkpoint(teacher, ckpt)
    if size is not None:  # refused at the first step, naming the option; with it, it teaches
        with pytest.raises(
            ValueError,
            match=rf'cannot run on 224x224 inputs .*Set '
            rf'model.teacher_input_size={size}',
        ):
            teaches(model, state)
        model, state = student_with_zoo_checkpoint(teacher, ckpt, teacher_input_size=size)
    teaches(model, state)


@pytest.mark.slow
def test_the_papers_regnety_16gf_teaches_through_timm_classifier(tmp_path):
    """configs/teachers/regnety_160.py with a checkpoint laid out as the official
    regnety_160-a5fe301d.pth: timm key names under ``model``."""
    teacher = osp.join(ROOT, 'configs/teachers/regnety_160.py')
    model, state = student_with_zoo_checkpoint(
        teacher, str(tmp_path / 'regnety_160.pth'), key='model'
    )
    assert next(iter(state)) == 'stem.conv.weight'  # timm's names: TimmClassifier's layout
    teaches(model, state)


@pytest.mark.slow
def test_a_teacher_built_for_one_input_size_names_teacher_input_size(tmp_path):
    """RepMLP at 256 px asserts its input size inside mmpretrain; the user gets the option."""
    teacher = 'mmpretrain::repmlp/repmlp-base_8xb64_in1k-256px.py'
    assert resolve_teacher(teacher)[2] == (256, 256)
    ckpt = str(tmp_path / 'teacher.pth')
    with pytest.warns(UserWarning, match=r'trained at 256x256 px .* student reads 224x224'):
        model, state = student_with_zoo_checkpoint(teacher, ckpt)
    model.load_teacher_checkpoint()
    with pytest.raises(
        ValueError,
        match=r'cannot run on 224x224 inputs \(AssertionError: .*\); '
        r'it was trained at 256x256 px\. Set '
        r'model.teacher_input_size=256',
    ):
        one_training_step(model)
    del model
    teaches(deit_ti_student(teacher, ckpt, teacher_input_size=256), state)
