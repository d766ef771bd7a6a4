"""The "your own dataset" recipe (docs/user_guides/own_dataset.md, configs/custom/) end to end
on a tiny ImageFolder of 3 real Fashion-MNIST classes: (a) fine-tune the ResNet teacher from
an mmpretrain-format ImageNet checkpoint, (b) convert an official-format DeiT⚗ checkpoint and
fine-tune it with hard distillation from that teacher, (c) evaluate, classify and export.
The "downloads" are random-weight files in the official/mmpretrain formats; the configs are the
project's, copied, with the dataset set in their one place, a ResNet-18 teacher instead of the
ResNet-50 and a tiny DeiT for speed."""

import os
import os.path as osp
import shutil

import pytest
import timm
import torch
from tool_modules import ROOT, load_tool

deit_to_plugin = load_tool('model_converters/deit_to_plugin.py')
export_onnx = load_tool('deployment/export_onnx.py')
test_tool = load_tool('test.py')
train_tool = load_tool('train.py')

CLASSES = ['0_t-shirt_top', '1_trouser', '7_sneaker']
RESNET = 'checkpoints/resnet50_8xb32_in1k_20210831-ea4938fc.pth'
DEIT = 'checkpoints/deit_small_distilled_patch16_224-649709d9.pth'
DEIT_PLUGIN = 'checkpoints/deit_small_distilled_patch16_224_plugin.pth'
TINY = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
LOADER_OPTS = [
    f'{loader}.{key}'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for key in ('num_workers=0', 'persistent_workers=False', 'batch_size=12')
]


def write_image_folder(fmnist_root, out, per_class):
    for split, src_split, count in (('train', 'train', per_class), ('val', 'test', per_class // 2)):
        for name in CLASSES:
            src = osp.join(fmnist_root, src_split, name)
            dst = osp.join(out, split, name.split('_', 1)[1])
            os.makedirs(dst)
            for file in sorted(os.listdir(src))[:count]:
                shutil.copy(osp.join(src, file), dst)


def replace_once(path, old, new):
    with open(path) as f:
        text = f.read()
    assert text.count(old) == 1, old
    with open(path, 'w') as f:
        f.write(text.replace(old, new))


def set_dataset(base_file, **values):
    """Edit the one place the recipe describes the dataset."""
    with open(base_file) as f:
        lines = f.read().splitlines()
    for key, value in values.items():
        at = [i for i, line in enumerate(lines) if line.startswith(f'{key} = ')]
        assert len(at) == 1, key
        lines[at[0]] = f'{key} = {value!r}'
    with open(base_file, 'w') as f:
        f.write('\n'.join(lines) + '\n')


@pytest.mark.slow
def test_recipe_end_to_end(fmnist_root, tmp_path, monkeypatch):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    monkeypatch.chdir(tmp_path)
    write_image_folder(fmnist_root, 'data/my_dataset', per_class=12)
    shutil.copytree(osp.join(ROOT, 'configs/custom'), 'configs/custom')
    # as own_dataset.md says: a copy outside the repository names the runtime base by package
    for name in ('deit_s_distill_ft.py', 'resnet50_teacher_ft.py'):
        path = osp.join('configs/custom', name)
        with open(path) as f:
            text = f.read()
        assert "'../_base_/default_runtime.py'" in text
        with open(path, 'w') as f:
            f.write(
                text.replace(
                    "'../_base_/default_runtime.py'", "'deit_plugin::_base_/default_runtime.py'"
                )
            )
    set_dataset(
        'configs/custom/_base_custom_dataset.py',
        data_root='data/my_dataset',
        num_classes=3,
        img_size=32,
    )
    # the teacher at depth 18: what the recipe does does not depend on the ResNet's size
    teacher_cfg = 'configs/custom/resnet50_teacher_ft.py'
    replace_once(teacher_cfg, 'depth=50', 'depth=18')
    replace_once(teacher_cfg, 'in_channels=2048', 'in_channels=512')
    os.makedirs('checkpoints')

    # stand-ins for the two downloads (the ImageNet ResNet at the depth the teacher now has)
    torch.manual_seed(0)
    imagenet_resnet = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(3,), style='pytorch'),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=1000, in_channels=512),
        )
    )
    torch.save(dict(meta=dict(), state_dict=imagenet_resnet.state_dict()), RESNET)
    official = timm.models.deit.VisionTransformerDistilled(
        img_size=32,
        patch_size=16,
        embed_dim=TINY['embed_dims'],
        depth=TINY['num_layers'],
        num_heads=TINY['num_heads'],
        mlp_ratio=2,
        num_classes=1000,
    )
    torch.save(dict(model=official.state_dict()), DEIT)

    # (a) the teacher
    train_tool.main(
        [
            'configs/custom/resnet50_teacher_ft.py',
            '--work-dir',
            'work_dirs/custom_teacher',
            '--cfg-options',
            'train_cfg.max_epochs=1',
            *LOADER_OPTS,
        ]
    )
    teacher = torch.load(
        'work_dirs/custom_teacher/epoch_1.pth', map_location='cpu', weights_only=False
    )['state_dict']
    assert teacher['head.fc.weight'].shape == (3, 512)
    # the backbone started from the ImageNet file: three warmup steps later the last block is
    # still within 5% of it (the first layers of this random stand-in move more)
    start = imagenet_resnet.state_dict()['backbone.layer4.1.conv2.weight']
    moved = (teacher['backbone.layer4.1.conv2.weight'] - start).abs().max()
    assert moved < 0.05 * start.abs().max()

    # (b) the student: convert, then fine-tune with hard distillation
    assert deit_to_plugin.main([DEIT, DEIT_PLUGIN]) == 0
    with open('configs/custom/tiny_student.py', 'w') as f:
        f.write(
            f"_base_ = ['./deit_s_distill_ft.py']\n"
            f'model = dict(backbone=dict(arch=dict(_delete_=True, **{TINY!r})),\n'
            f'             head=dict(in_channels=64),\n'
            f"             teacher_ckpt='work_dirs/custom_teacher/epoch_1.pth')\n"
            f'train_cfg = dict(max_epochs=1, val_interval=1)\n'
        )
    train_tool.main(
        [
            'configs/custom/tiny_student.py',
            '--work-dir',
            'work_dirs/custom_student',
            '--cfg-options',
            *LOADER_OPTS,
        ]
    )
    student = torch.load(
        'work_dirs/custom_student/epoch_1.pth', map_location='cpu', weights_only=False
    )
    state = student['state_dict']
    assert state['head.layers.head.weight'].shape == (3, 64)
    assert not any(k.startswith('teacher.') for k in state)
    # class names: the folder names, sorted
    assert list(student['meta']['dataset_meta']['classes']) == ['sneaker', 't-shirt_top', 'trouser']
    # the backbone started from the converted official file
    official_sd = official.state_dict()
    assert torch.allclose(state['backbone.dist_token'], official_sd['dist_token'], atol=1e-3)
    assert not torch.allclose(
        state['backbone.dist_token'], torch.zeros_like(state['backbone.dist_token'])
    )
    cfg = Config.fromfile('configs/custom/tiny_student.py')
    assert cfg.model.head.num_classes == 3 and cfg.data_preprocessor.num_classes == 3
    assert cfg.model.head.distillation == 'hard'

    # (c) evaluate (teacher accuracy and agreement included), classify, export
    metrics = test_tool.main(
        [
            'configs/custom/tiny_student.py',
            'work_dirs/custom_student/epoch_1.pth',
            '--work-dir',
            'work_dirs/custom_test',
            '--out',
            'preds.pkl',
            '--cfg-options',
            *LOADER_OPTS,
        ]
    )
    import pickle

    with open('preds.pkl', 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == len(os.listdir('data/my_dataset/val')) * len(
        os.listdir('data/my_dataset/val/trouser')
    )
    n = len(dumped) / 100
    # every number recounted from the dumped predictions of the val images
    recount = {
        'distill/fused_top1': [d['pred_label'][0] == d['gt_label'][0] for d in dumped],
        'distill/teacher_top1': [d['teacher_pred_label'][0] == d['gt_label'][0] for d in dumped],
        'distill/agreement': [d['pred_label'][0] == d['teacher_pred_label'][0] for d in dumped],
    }
    for key, hits in recount.items():
        assert sum(int(h) for h in hits) / n == pytest.approx(metrics[key], abs=1e-4), key
    from deit_plugin.apis import inference_model

    image = osp.join('data/my_dataset/val/trouser', os.listdir('data/my_dataset/val/trouser')[0])
    result = inference_model(
        'configs/custom/tiny_student.py',
        image,
        pretrained='work_dirs/custom_student/epoch_1.pth',
        device='cpu',
    )
    assert (
        result['pred_class']
        == ['sneaker', 't-shirt_top', 'trouser'][int(result['pred_scores'].argmax())]
    )
    assert result['cls_pred_scores'].shape == (3,)
    # mmpretrain's own inferencer on the same RGB config: same fused scores, heads in samples
    from mmpretrain import ImageClassificationInferencer

    inferencer = ImageClassificationInferencer(
        'configs/custom/tiny_student.py',
        pretrained='work_dirs/custom_student/epoch_1.pth',
        device='cpu',
        predict_with_teacher=False,
    )
    (sample,) = inferencer(image, return_datasamples=True)
    assert torch.allclose(sample.pred_score, torch.from_numpy(result['pred_scores']), atol=1e-5)
    assert torch.allclose(
        sample.cls_pred_score, torch.from_numpy(result['cls_pred_scores']), atol=1e-5
    )
    assert (
        export_onnx.main(
            [
                'configs/custom/tiny_student.py',
                'work_dirs/custom_student/epoch_1.pth',
                'student.onnx',
            ]
        )
        == 0
    )
    # the exported model on the same preprocessed image gives the inference API's scores
    import onnxruntime as ort

    data = next(iter(inferencer.preprocess([image])))
    inputs = inferencer.model.data_preprocessor(data, False)['inputs']
    session = ort.InferenceSession('student.onnx', providers=['CPUExecutionProvider'])
    logits = torch.from_numpy(session.run(['logits'], {'inputs': inputs.numpy()})[0])
    assert torch.allclose(logits.softmax(-1)[0], torch.from_numpy(result['pred_scores']), atol=1e-4)


def test_recipe_defaults_are_the_papers_transfer_settings():
    """configs/custom as shipped: the authors' fine-tuning settings (224 px, SGD lr 0.01 at
    batch 768, wd 1e-4, 1000 epochs, no random erasing, no stochastic depth, hard distillation)
    and the dataset's class count reaching every head from its one place."""
    from mmengine.config import Config

    from deit_plugin.models.distill_classifier import load_teacher_config

    cfg = Config.fromfile(osp.join(ROOT, 'configs/custom/deit_s_distill_ft.py'))
    assert cfg.model.backbone.img_size == 224 and cfg.model.backbone.drop_path_rate == 0
    assert cfg.model.head.distillation == 'hard' and cfg.model.head.alpha == 0.5
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'SGD' and opt.weight_decay == 1e-4
    assert opt.lr * 768 / cfg.train_dataloader.batch_size == pytest.approx(0.01)
    assert cfg.train_cfg.max_epochs == 1000 and cfg.param_scheduler[1].end == 1000
    steps = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert 'RandomErasing' not in steps and 'RandAugment' in steps
    assert [a['type'] for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
    teacher, _ = load_teacher_config(cfg.model.teacher)
    assert teacher['head']['num_classes'] == cfg.model.head.num_classes == 10
    assert cfg.data_preprocessor.num_classes == 10
    assert cfg.load_from == DEIT_PLUGIN
