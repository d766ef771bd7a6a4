"""Every recipe users are told to run, run as written: the student config of README.md and of
docs/user_guides/own_config.md (taken from the files' text), the ImageNet configs and
configs/custom/*, each through tools/train.py for one or two iterations and then tools/test.py
on the checkpoint it wrote; and one config per family under mmpretrain's own tools.

The tools run from a project folder (recipe_project.py) holding a tiny ImageNet-format dataset
of real photos and random-weight checkpoints under the names and in the layouts the configs
give (the teachers' model-zoo layouts, the official DeiT checkpoints converted as the configs'
comments say). Only the length of the run changes: one epoch over 4 (or 2) images, batch 2 (or
1), no dataloader workers, one thread.

Cost per image of a training step (3 x the student's forward for forward + backward, plus the
teacher's forward): DeiT-S 4.6 GFLOPs and RegNetY-16GF 16 GFLOPs at 224 px, about 30 GFLOPs;
DeiT-B 17.6 + RegNetY 16, about 69; DeiT-B at 384 px 55.5 + RegNetY at 384 px about 47, about
214 GFLOPs. The DeiT-B configs therefore run at batch 1 on 2 images.
"""

import os.path as osp

import pytest
import torch
from recipe_project import (
    DEIT_B_OFFICIAL,
    DEIT_S_OFFICIAL,
    PHOTOS,
    REGNETY,
    RESNET50,
    ROOT,
    doc_python_block,
    make_image_folder,
    make_imagenet,
    mmpretrain_tool,
    run_python,
    save_official_deit,
    save_regnety_160,
    save_resnet50_in1k,
)
from tool_modules import load_tool

pytestmark = pytest.mark.slow

train_tool = load_tool('train.py')
test_tool = load_tool('test.py')

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    """The user's folder: data/imagenet, data/my_dataset and checkpoints/ (teachers and
    official DeiT⚗ weights are created on first use by :func:`checkpoint`)."""
    root = tmp_path_factory.mktemp('project')
    make_imagenet(str(root / 'data/imagenet'))
    make_image_folder(str(root / 'data/my_dataset'))
    (root / 'checkpoints').mkdir()
    return root


def checkpoint(project, name: str) -> str:
    """``checkpoints/<name>`` in the project, made once."""
    path = str(project / 'checkpoints' / name)
    makers = {
        REGNETY: save_regnety_160,
        RESNET50: save_resnet50_in1k,
        DEIT_S_OFFICIAL: lambda p: save_official_deit('small', p),
        DEIT_B_OFFICIAL: lambda p: save_official_deit('base', p),
    }
    done = path if name in (REGNETY, RESNET50) else path[: path.rindex('-')] + '_plugin.pth'
    if not osp.isfile(done):
        makers[name](path)
    return done


def short_run(batch: int = 2, images: int = 0, val: bool = True):
    """--cfg-options for one epoch over the project's images (``images``: the first N)."""
    opts = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1']
    for loader in LOADERS:
        size = batch if loader == 'train_dataloader' else min(batch, 2)
        opts += [f'{loader}.batch_size={size}', f'{loader}.num_workers=0']
    if images:
        opts.append(f'train_dataloader.dataset.indices={images}')
    if not val:
        opts += ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
    return opts


def train_and_test(
    config: str, work_dir: str, opts, monkeypatch, project, train_images=4, batch=2, test_opts=()
):
    """tools/train.py, then tools/test.py on its checkpoint, from the project folder."""
    monkeypatch.chdir(project)
    runner = train_tool.main(
        [config, '--work-dir', work_dir, '--threads', '1', '--cfg-options', *opts]
    )
    iters = -(-min(train_images, len(PHOTOS)) // batch)
    assert runner.iter == iters, f'trained {runner.iter} iterations, expected {iters}'
    hub = runner.message_hub
    losses = {
        k[len('train/') :]: hub.get_scalar(k).current()
        for k in hub.log_scalars
        if k.startswith('train/loss')
    }
    assert 'loss' in losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values()), (
        losses
    )
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    saved = torch.load(ckpt, map_location='cpu', weights_only=False)
    assert not any(k.startswith('teacher.') for k in saved['state_dict'])
    metrics = test_tool.main(
        [
            config,
            ckpt,
            '--work-dir',
            osp.join(work_dir, 'test'),
            '--threads',
            '1',
            '--cfg-options',
            'test_dataloader.num_workers=0',
            f'test_dataloader.batch_size={min(batch, 2)}',
            *test_opts,
        ]
    )
    # a share of the validation images (ImageNet folder: 2, image folder: 4)
    val_images = 4 if 'custom' in config else 2
    assert metrics['accuracy/top1'] in [100.0 * i / val_images for i in range(val_images + 1)], (
        metrics
    )
    return runner, saved, losses, metrics


def check_distilled(saved, losses, teacher_word):
    assert set(losses) == {'loss', 'loss_cls', 'loss_dist'}, losses
    recorded = saved['meta']['deit_plugin']
    assert teacher_word in recorded['teacher_ckpt'] and recorded['teacher_fingerprint']


# --- the configs of the documentation ------------------------------------------------------

DOC_BLOCKS = {
    'readme': ('README.md', '## Distil your own model'),
    'own_config': ('docs/user_guides/own_config.md', '## A full student config'),
}


@pytest.mark.parametrize('doc', list(DOC_BLOCKS))
def test_documented_student_config_trains_and_tests_as_written(doc, project, monkeypatch):
    """The config block is saved to my_config.py and run with the commands the README gives
    (``python tools/train.py my_config.py``, then tools/test.py on its checkpoint), with the
    ResNet-50 teacher checkpoint it names in checkpoints/ (mmpretrain's model-zoo layout)."""
    checkpoint(project, RESNET50)
    text = doc_python_block(*DOC_BLOCKS[doc])
    config = project / f'{doc}_config.py'
    config.write_text(text)
    _, saved, losses, metrics = train_and_test(
        str(config), str(project / 'work_dirs' / doc), short_run(), monkeypatch, project
    )
    check_distilled(saved, losses, RESNET50)
    # own_config's block evaluates each head (DistillationMetric); the README's top-1/top-5
    assert ('distill/fused_top1' in metrics) == (doc == 'own_config'), metrics


# --- the ImageNet configs ------------------------------------------------------------------

IMAGENET = {
    # config: (batch, training images, official DeiT⚗ checkpoint it loads or None)
    'deit_ti_distill.py': (2, 4, None),
    'deit_s_distill.py': (2, 4, None),
    'deit_b_distill.py': (1, 2, None),
    'deit_b_distill_384_ft.py': (1, 2, DEIT_B_OFFICIAL),
}


@pytest.mark.parametrize('name', list(IMAGENET))
def test_imagenet_config_trains_and_tests_with_the_regnety_teacher(name, project, monkeypatch):
    batch, images, official = IMAGENET[name]
    checkpoint(project, REGNETY)
    if official:
        checkpoint(project, official)
    runner, saved, losses, _ = train_and_test(
        osp.join(ROOT, 'configs', name),
        str(project / 'work_dirs' / name[:-3]),
        short_run(batch, images, val=False),
        monkeypatch,
        project,
        images,
        batch,
    )
    check_distilled(saved, losses, REGNETY)
    assert 'ema_state_dict' in saved  # the recipe's model EMA
    size = 384 if '384' in name else 224
    assert runner.model.backbone.patch_resolution == (size // 16, size // 16)


# --- configs/custom: teacher, then student -------------------------------------------------


def test_custom_dataset_recipe_trains_teacher_then_student(project, monkeypatch):
    """Step 1 fine-tunes the ImageNet ResNet-50 on the project's 4 classes (its 1000-class
    head does not fit and is re-initialised, with a warning); step 2 fine-tunes the converted
    official DeiT-S⚗ with that teacher. The student's teacher_ckpt names the teacher's last
    epoch of a full run (epoch_100.pth); this one-epoch run points it at epoch_1.pth."""
    checkpoint(project, RESNET50)
    checkpoint(project, DEIT_S_OFFICIAL)
    custom = osp.join(ROOT, 'configs/custom')
    teacher_dir = str(project / 'work_dirs/custom_teacher')
    runner, saved, _, _ = train_and_test(
        osp.join(custom, 'resnet50_teacher_ft.py'), teacher_dir, short_run(), monkeypatch, project
    )
    assert saved['state_dict']['head.fc.weight'].shape[0] == 10  # num_classes of the base
    teacher = [f'model.teacher_ckpt={teacher_dir}/epoch_1.pth']
    runner, saved, losses, metrics = train_and_test(
        osp.join(custom, 'deit_s_distill_ft.py'),
        str(project / 'work_dirs/custom_student'),
        short_run() + teacher,
        monkeypatch,
        project,
        test_opts=teacher,
    )
    check_distilled(saved, losses, 'custom_teacher')
    assert 'distill/agreement' in metrics  # predict_with_teacher=True


# --- mmpretrain's own tools ----------------------------------------------------------------


def mm_train_and_test(config, work_dir, opts, cwd, test_opts=()):
    run_python(
        [mmpretrain_tool('train.py'), config, '--work-dir', work_dir, '--cfg-options', *opts],
        cwd=cwd,
    )
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    out = run_python(
        [
            mmpretrain_tool('test.py'),
            config,
            ckpt,
            '--work-dir',
            osp.join(work_dir, 'test'),
            '--cfg-options',
            'test_dataloader.num_workers=0',
            *test_opts,
        ],
        cwd=cwd,
    )
    assert 'accuracy/top1' in out, out[-2000:]
    return ckpt


def test_imagenet_config_under_mmpretrain_tools(project):
    checkpoint(project, REGNETY)
    ckpt = mm_train_and_test(
        osp.join(ROOT, 'configs/deit_ti_distill.py'),
        str(project / 'work_dirs/mm_deit_ti'),
        short_run(val=False) + ['train_dataloader.persistent_workers=False'],
        str(project),
    )
    meta = torch.load(ckpt, map_location='cpu', weights_only=False)['meta']
    assert meta['deit_plugin']['teacher_fingerprint']  # the plugin's hook ran in their Runner


def test_custom_configs_under_mmpretrain_tools(project):
    checkpoint(project, RESNET50)
    checkpoint(project, DEIT_S_OFFICIAL)
    custom = osp.join(ROOT, 'configs/custom')
    no_workers = [f'{loader}.persistent_workers=False' for loader in LOADERS]
    teacher = mm_train_and_test(
        osp.join(custom, 'resnet50_teacher_ft.py'),
        str(project / 'work_dirs/mm_custom_teacher'),
        short_run() + no_workers,
        str(project),
    )
    teacher = [f'model.teacher_ckpt={teacher}']
    mm_train_and_test(
        osp.join(custom, 'deit_s_distill_ft.py'),
        str(project / 'work_dirs/mm_custom_student'),
        short_run() + no_workers + teacher,
        str(project),
        test_opts=teacher + ['test_dataloader.persistent_workers=False'],
    )


FASHION_MNIST = (
    'configs/fashion_mnist/deit_tiny_distill.py',
    'configs/fashion_mnist/study/deit_tiny_student_v2.py',
)


@pytest.mark.parametrize('config', FASHION_MNIST)
def test_fashion_mnist_config_under_mmpretrain_tools_unchanged(config, fmnist_root, tmp_path):
    """No dataloader option passed: the configs' own num_workers=0 and persistent_workers=False
    must satisfy mmpretrain's tools (whose default is persistent_workers=True)."""
    from reliability_utils import save_initialised_teacher

    teacher = save_initialised_teacher(str(tmp_path / 'teacher.pth'))
    opts = [
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        f'model.teacher_ckpt={teacher}',
        'default_hooks.checkpoint.interval=1',
        'train_dataloader.batch_size=32',
        'train_dataloader.dataset.indices=64',
        'val_dataloader.dataset.indices=64',
        'test_dataloader.dataset.indices=64',
    ]
    if 'study' not in config:  # PNG folders (the conftest fixture); the study reads IDX files
        opts += [f'{loader}.dataset.data_root={fmnist_root}' for loader in LOADERS]
    work_dir = str(tmp_path / 'work')
    run_python(
        [
            mmpretrain_tool('train.py'),
            osp.join(ROOT, config),
            '--work-dir',
            work_dir,
            '--cfg-options',
            *opts,
        ],
        cwd=str(tmp_path),
    )
    out = run_python(
        [
            mmpretrain_tool('test.py'),
            osp.join(ROOT, config),
            osp.join(work_dir, 'epoch_1.pth'),
            '--work-dir',
            str(tmp_path / 'test'),
            '--cfg-options',
            *opts,
        ],
        cwd=str(tmp_path),
    )
    assert 'accuracy/top1' in out
