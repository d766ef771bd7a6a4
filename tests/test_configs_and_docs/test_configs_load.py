"""Every config under configs/ loads and builds its model through the registry, and the bases in
configs/_base_/ give the study and demo configs the values their protocols fix."""

import ast
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from tool_modules import ROOT

from deit_plugin.utils.config import model_with_data_preprocessor

CONFIG_DIR = osp.join(ROOT, 'configs')


def is_base(path):
    rel = osp.relpath(path, CONFIG_DIR)
    return rel.split(osp.sep)[0] == '_base_' or osp.basename(rel).startswith('_base_')


ALL = sorted(glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True))
CONFIGS = [osp.relpath(p, CONFIG_DIR) for p in ALL if not is_base(p)]
BASES = [p for p in ALL if is_base(p)]
# ImageNet/COCO-size models (DeiT-S/B, RegNetY-16GF teachers, COCO detectors) cost seconds each
# to build: for those the test resolves every component type in the registry instead.
BUILT = ('fashion_mnist/', 'det/retinanet_deit_tiny_fmnist_det.py')
# building this one reads a recorded teacher cache
# (tests/test_cache/test_teacher_cache.py records one)
NOT_BUILT = ('fashion_mnist/study/deit_tiny_student_v2_cached.py',)
STUDY = 'fashion_mnist/study/'


def load(name):
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def registry_for(cfg):
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS


def component_types(model):
    """(key, type) of the model and of its direct components, with their ``_scope_`` prefix."""
    found = [('model', model['type'])]
    for key in ('backbone', 'neck', 'head', 'bbox_head', 'rpn_head', 'roi_head'):
        part = model.get(key)
        if isinstance(part, dict) and 'type' in part:
            scope = part.get('_scope_')
            found.append((key, f'{scope}.{part["type"]}' if scope else part['type']))
    return found


def test_the_glob_finds_the_configs_and_the_bases():
    assert {
        'deit_s_distill.py',
        'fashion_mnist/study/deit_tiny_student_v2.py',
        'fashion_mnist/study/resnet_cifar_teacher_v2.py',
        'det/retinanet_deit_s_sfp_1x_coco.py',
    } <= set(CONFIGS)
    assert not [c for c in CONFIGS if '_base_' in c]
    assert osp.join(CONFIG_DIR, '_base_', 'default_runtime.py') in BASES


@pytest.mark.parametrize('name', CONFIGS)
def test_config_loads_and_its_model_resolves_in_the_registry(name):
    cfg = load(name)
    models = registry_for(cfg)
    for key, type_name in component_types(cfg.model):
        assert models.get(type_name) is not None, f'{name}: {key} type {type_name!r} unknown'
    if not name.startswith(BUILT) or name in NOT_BUILT:
        return
    model = models.build(model_with_data_preprocessor(cfg))
    assert type(model) is models.get(cfg.model.type)
    if cfg.model.get('teacher'):
        teacher_cfg = Config.fromfile(cfg.model.teacher)
        assert type(model.teacher) is models.get(teacher_cfg.model.type)


def base_files(path):
    """The files named by the `_base_` list of one config file (relative ones only)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == '_base_':
            value = ast.literal_eval(node.value)
            names = [value] if isinstance(value, str) else value
            return [osp.normpath(osp.join(osp.dirname(path), n)) for n in names if '::' not in n]
    return []


def test_every_base_file_is_used():
    used = {b for path in ALL for b in base_files(path)}
    assert [osp.relpath(b, CONFIG_DIR) for b in BASES if b not in used] == []
    assert all(osp.isfile(b) for b in used)


def pipeline_by_type(pipeline):
    return {t['type']: t for t in pipeline}


def test_demo_configs():
    student = load('fashion_mnist/deit_tiny_distill.py')
    teacher = load('fashion_mnist/resnet_cifar_teacher.py')
    for cfg in (student, teacher):
        assert cfg.default_scope == 'mmpretrain' and cfg.custom_imports.imports == ['deit_plugin']
        assert cfg.randomness.seed == 0 and cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.default_hooks.checkpoint.type == 'deit_plugin.AtomicCheckpointHook'
        assert cfg.train_dataloader.dataset.type == 'CustomDataset'
        assert cfg.train_dataloader.dataset.data_root == 'data/fashion_mnist'
        assert cfg.val_dataloader.dataset.data_prefix == 'test'
        assert (cfg.data_preprocessor.mean, cfg.data_preprocessor.std) == ([72.94], [90.02])
    assert student.model.teacher == osp.join(CONFIG_DIR, 'fashion_mnist/resnet_cifar_teacher.py')
    assert student.train_cfg.max_epochs == 3 and teacher.train_cfg.max_epochs == 2
    opt = student.optim_wrapper
    assert opt.constructor == 'deit_plugin.StudentOptimWrapperConstructor'
    assert (opt.optimizer.type, opt.optimizer.lr) == ('AdamW', 2e-3)
    assert set(opt.paramwise_cfg.custom_keys) == {'.cls_token', '.dist_token', '.pos_embed'}
    assert [h.type for h in student.custom_hooks] == [
        'deit_plugin.DistillationHook',
        'deit_plugin.RandomStateHook',
        'deit_plugin.FiniteLossHook',
    ]
    assert (teacher.optim_wrapper.optimizer.type, teacher.optim_wrapper.optimizer.lr) == (
        'SGD',
        0.1,
    )
    assert teacher.custom_hooks[0].type == 'deit_plugin.ChannelsLastHook'
    no_teacher = load('fashion_mnist/deit_tiny_no_teacher.py')
    assert no_teacher.model.head.distillation == 'none'
    assert no_teacher.model.teacher == student.model.teacher


def test_study_v2_student_has_the_protocol_values():
    cfg = load(STUDY + 'deit_tiny_student_v2.py')
    assert [(a.type, a.alpha) for a in cfg.data_preprocessor.batch_augments.augments] == [
        ('Mixup', 0.8),
        ('CutMix', 1.0),
    ]
    train = cfg.train_dataloader.dataset
    assert (train.type, train.split, train.index_range) == (
        'deit_plugin.FashionMNISTIdx',
        'train',
        (0, 4500),
    )
    ops = pipeline_by_type(train.pipeline)
    assert ops['deit_plugin.RandomErasing'].erase_prob == 0.25
    assert ops['RandomCrop'].padding == 2
    rand_aug = ops['deit_plugin.GrayAsRGB'].transforms[0]
    assert (rand_aug.magnitude_level, rand_aug.magnitude_std) == (9, 0.5)
    assert cfg.val_dataloader.dataset.split == 'test'  # the student reports test accuracy
    assert (cfg.train_cfg.max_epochs, cfg.param_scheduler[1].end) == (40, 40)
    assert cfg.model.backbone.drop_path_rate == 0.1
    assert cfg.model.head.loss.label_smooth_val == 0.1
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.default_hooks.checkpoint.type == 'deit_plugin.AtomicCheckpointHook'
    assert cfg.optim_wrapper.constructor == 'deit_plugin.StudentOptimWrapperConstructor'

    cached = load(STUDY + 'deit_tiny_student_v2_cached.py')
    assert cached.train_dataloader.dataset.type == 'deit_plugin.SeededDataset'
    assert cached.train_dataloader.dataset.dataset.index_range == (0, 4500)
    assert cached.train_dataloader.dataset.dataset.pipeline == train.pipeline


@pytest.mark.parametrize('name', ['resnet_cifar_teacher_v2.py', 'vit_teacher_v2.py'])
def test_study_v2_teachers_are_chosen_on_held_out_images(name):
    cfg = load(STUDY + name)
    train, val, test = (cfg[f'{s}_dataloader'].dataset for s in ('train', 'val', 'test'))
    assert (train.split, train.index_range) == ('train', (0, 4500))
    assert (val.split, val.index_range) == ('train', (4500, 5000))
    assert test.split == 'test' and 'index_range' not in test
    assert cfg.train_cfg.max_epochs == 100 and cfg.train_cfg.val_interval == 1
    ckpt = cfg.default_hooks.checkpoint
    assert (ckpt.type, ckpt.interval, ckpt.max_keep_ckpts) == (
        'deit_plugin.AtomicCheckpointHook',
        1,
        -1,
    )
    assert (ckpt.save_best, ckpt.rule) == ('accuracy/top1', 'greater')
    assert cfg.val_evaluator == dict(type='Accuracy', topk=(1,))
    assert pipeline_by_type(train.pipeline)['deit_plugin.RandomErasing'].erase_prob == 0.25


def test_study_v2_vit_teacher_uses_the_student_recipe():
    vit = load(STUDY + 'vit_teacher_v2.py')
    student = load(STUDY + 'deit_tiny_student_v2.py')
    cnn = load(STUDY + 'resnet_cifar_teacher_v2.py')
    assert vit.train_dataloader.dataset.pipeline == student.train_dataloader.dataset.pipeline
    assert vit.data_preprocessor == student.data_preprocessor
    assert vit.optim_wrapper.optimizer == student.optim_wrapper.optimizer
    assert vit.param_scheduler == student.param_scheduler
    assert vit.model.backbone.arch == student.model.backbone.arch
    assert vit.model.backbone.drop_path_rate == 0.1
    assert vit.model.head.loss == student.model.head.loss
    # a plain ViT: no distillation token to exempt, no teacher to leave out
    assert set(vit.optim_wrapper.paramwise_cfg.custom_keys) == {'.cls_token', '.pos_embed'}
    assert 'constructor' not in vit.optim_wrapper
    assert [h.type for h in vit.custom_hooks] == [
        'deit_plugin.RandomStateHook',
        'deit_plugin.FiniteLossHook',
    ]
    # the CNN teacher: crop, flip and erasing, no RandAugment and no Mixup/CutMix
    assert 'deit_plugin.GrayAsRGB' not in pipeline_by_type(cnn.train_dataloader.dataset.pipeline)
    assert 'batch_augments' not in cnn.data_preprocessor
    assert cnn.val_dataloader.dataset == vit.val_dataloader.dataset


def test_study_v1_configs_read_fashion_mnist_in_memory():
    for name, epochs in (
        ('deit_tiny_student.py', 3),
        ('resnet_cifar_teacher.py', 2),
        ('vit_teacher.py', 6),
    ):
        cfg = load(STUDY + name)
        train, val = cfg.train_dataloader.dataset, cfg.val_dataloader.dataset
        assert (train.type, train.split, train.indices) == (
            'deit_plugin.FashionMNISTIdx',
            'train',
            None,
        )
        assert [t.type for t in train.pipeline] == ['RandomFlip', 'PackInputs']
        assert (val.type, val.split) == ('deit_plugin.FashionMNISTIdx', 'test')
        assert cfg.train_cfg.max_epochs == epochs == cfg.param_scheduler[1].end
        assert cfg.randomness.seed == 0
    assert 'custom_hooks' not in load(STUDY + 'vit_teacher.py')


def test_bases_resolve_by_package_name(tmp_path):
    """configs/_base_/ ships with the package: deit_plugin:: names reach it (see
    docs/user_guides/package_configs.md)."""
    user = tmp_path / 'my_vit.py'
    user.write_text(
        "_base_ = ['deit_plugin::_base_/models/vit_tiny_fmnist.py',\n"
        "          'deit_plugin::_base_/schedules/fashion_mnist_adamw.py']\n"
        'train_cfg = dict(max_epochs=1)\n'
    )
    cfg = Config.fromfile(str(user))
    model = dict(cfg.model)
    # mmengine scopes what a package's config defines: the ViT still comes from mmpretrain
    assert model.pop('_scope_') == 'deit_plugin'
    assert model == load('_base_/models/vit_tiny_fmnist.py').model
    from mmpretrain.models import VisionTransformer
    from mmpretrain.registry import MODELS

    assert isinstance(MODELS.build(cfg.model).backbone, VisionTransformer)
    assert cfg.optim_wrapper.optimizer.lr == 2e-3
    assert cfg.train_cfg == dict(by_epoch=True, max_epochs=1, val_interval=3)
