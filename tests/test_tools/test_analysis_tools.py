"""tools/analysis: token similarity, head/teacher agreement and log plots, on a tiny DeiT⚗
trained for a few iterations by the real Runner (tools/train.py) on real Fashion-MNIST images."""

import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config, DictAction
from mmpretrain.registry import MODELS
from tool_modules import ROOT, load_tool

from deit_plugin.utils.config import model_with_data_preprocessor

from tools._support.model_loading import build_loader, load_config, load_model

agreement = load_tool('analysis/agreement.py')
plot_logs = load_tool('analysis/plot_logs.py')
token_similarity = load_tool('analysis/token_similarity.py')
train_tool = load_tool('train.py')
pytestmark = pytest.mark.slow  # mmengine Runner / subprocess runs
STUDENT_CFG = osp.join(ROOT, 'configs/fashion_mnist/study/deit_tiny_student.py')
TEACHER_CFG = osp.join(ROOT, 'configs/fashion_mnist/study/resnet_cifar_teacher.py')


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """A DeiT⚗ trained 6 iterations with hard distillation from a (randomly initialised, saved
    and reloaded) CNN teacher on 192 real training images; validated on 64 test images."""
    work_dir = tmp_path_factory.mktemp('tiny_run')
    cfg = Config.fromfile(TEACHER_CFG)
    teacher = MODELS.build(model_with_data_preprocessor(cfg))
    teacher_ckpt = str(work_dir / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), teacher_ckpt)
    opts = [
        'train_dataloader.dataset.indices=192',
        'train_dataloader.batch_size=32',
        'val_dataloader.dataset.indices=64',
        'test_dataloader.dataset.indices=64',
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'param_scheduler.0.end=3',
        'param_scheduler.1.end=1',
        'default_hooks.logger.interval=2',
        f'model.teacher={TEACHER_CFG}',
        f'model.teacher_ckpt={teacher_ckpt}',
    ]
    train_tool.main([STUDENT_CFG, '--work-dir', str(work_dir), '--cfg-options', *opts])
    options = {k: DictAction._parse_iterable(v) for k, v in (o.split('=', 1) for o in opts)}
    return dict(
        work_dir=str(work_dir), ckpt=str(work_dir / 'epoch_1.pth'), opts=opts, options=options
    )


def tiny_backbone():
    return MODELS.build(
        dict(
            type='deit_plugin.DistilledVisionTransformer',
            img_size=28,
            patch_size=4,
            in_channels=1,
            arch=dict(embed_dims=32, num_layers=3, num_heads=4, feedforward_channels=64),
        )
    )


def test_identical_tokens_have_cosine_one_at_every_layer():
    torch.manual_seed(0)
    backbone = tiny_backbone().eval()
    with torch.no_grad():
        backbone.cls_token.normal_()
        backbone.dist_token.copy_(backbone.cls_token)
        backbone.pos_embed[:, 1].copy_(backbone.pos_embed[:, 0])
    cos = token_similarity.token_cosines(backbone, torch.randn(5, 1, 28, 28))
    assert cos.shape == (1 + 3, 5)
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-5)


def test_input_cosine_is_that_of_token_plus_position_embedding():
    torch.manual_seed(0)
    backbone = tiny_backbone().eval()
    with torch.no_grad():
        backbone.cls_token.normal_()
        backbone.dist_token.normal_()
    cos = token_similarity.token_cosines(backbone, torch.randn(2, 1, 28, 28))
    a = (backbone.cls_token + backbone.pos_embed[:, 0]).flatten()
    b = (backbone.dist_token + backbone.pos_embed[:, 1]).flatten()
    expected = torch.nn.functional.cosine_similarity(a, b, dim=0)
    assert torch.allclose(cos[0], expected.expand(2), atol=1e-5)
    # different tokens: the check above is not trivially 1
    assert abs(float(expected.detach())) < 0.9


def test_token_similarity_tool_on_a_trained_checkpoint(tiny_run, tmp_path):
    out = str(tmp_path / 'sim')
    token_similarity.main(
        [STUDENT_CFG, tiny_run['ckpt'], '--out', out, '--cfg-options', *tiny_run['opts']]
    )
    with open(out + '.json') as f:
        result = json.load(f)
    assert result['images'] == 64 and len(result['mean']) == 4 + 1
    assert all(-1.0 <= m <= 1.0 for m in result['mean'])
    ckpt = torch.load(tiny_run['ckpt'], map_location='cpu')['state_dict']
    learned = torch.nn.functional.cosine_similarity(
        ckpt['backbone.cls_token'].flatten(), ckpt['backbone.dist_token'].flatten(), dim=0
    )
    assert result['learned_tokens'] == pytest.approx(float(learned), abs=1e-6)
    assert osp.getsize(out + '.png') > 0 and 'block 4' in open(out + '.md').read()


def test_agreement_matrix_is_the_percentage_of_equal_labels(tiny_run):
    matrix = agreement.agreement_matrix(
        {
            'a': torch.tensor([0, 1, 2, 3]),
            'b': torch.tensor([0, 1, 0, 0]),
            'c': torch.tensor([3, 2, 1, 0]),
        }
    )
    assert (matrix['a']['b'], matrix['b']['c'], matrix['a']['c']) == (50.0, 25.0, 0.0)
    assert matrix['b']['a'] == matrix['a']['b']
    cfg = load_config(STUDENT_CFG, tiny_run['options'])
    model = load_model(cfg, tiny_run['ckpt'], need_teacher=True)
    first = agreement.predictions(model, build_loader(cfg, 'test'))
    matrix = agreement.agreement_matrix({'model': first['fused'], 'teacher': first['teacher']})
    expected = float((first['fused'] == first['teacher']).float().mean() * 100)
    assert matrix['model']['teacher'] == pytest.approx(expected)


def test_a_checkpoint_that_does_not_fit_names_its_missing_and_unexpected_keys(tiny_run, tmp_path):
    cfg = load_config(STUDENT_CFG, tiny_run['options'])
    state = torch.load(tiny_run['ckpt'], map_location='cpu')['state_dict']
    del state['backbone.ln1.weight']
    state['backbone.extra.weight'] = torch.zeros(1)
    bad = str(tmp_path / 'bad.pth')
    torch.save({'state_dict': state}, bad)
    with pytest.raises(SystemExit) as e:
        load_model(cfg, bad)
    message = str(e.value)
    assert 'missing keys (1): backbone.ln1.weight' in message
    assert 'unexpected keys (1): backbone.extra.weight' in message
    model = load_model(cfg, tiny_run['ckpt'])  # the real one loads strictly
    assert torch.equal(
        model.backbone.ln1.weight,
        torch.load(tiny_run['ckpt'], map_location='cpu')['state_dict']['backbone.ln1.weight'],
    )


def test_agreement_tool_matches_the_runner_metric(tiny_run, tmp_path):
    # the Runner's validation (DistillationMetric) and the tool must see the same predictions
    out = str(tmp_path / 'agree')
    agreement.main(
        [STUDENT_CFG, tiny_run['ckpt'], '--out', out, '--cfg-options', *tiny_run['opts']]
    )
    with open(out + '.json') as f:
        matrix = json.load(f)['agreement']
    val = [
        e
        for e in plot_logs.read_log(plot_logs.find_log(tiny_run['work_dir']))['val']
        if 'distill/fused_top1' in e
    ][-1]
    assert matrix['ground truth']['fused'] == pytest.approx(val['distill/fused_top1'], abs=1e-3)
    assert matrix['ground truth']['class head'] == pytest.approx(val['distill/cls_top1'], abs=1e-3)
    assert matrix['teacher']['fused'] == pytest.approx(val['distill/agreement'], abs=1e-3)


def test_plot_logs_reads_a_real_mmengine_log(tiny_run, tmp_path):
    log = plot_logs.read_log(plot_logs.find_log(tiny_run['work_dir']))
    phase, xs, ys = plot_logs.series(log, 'loss')
    assert phase == 'train' and xs == [2, 4, 6] and all(y > 0 for y in ys)
    assert plot_logs.series(log, 'accuracy/top1')[0] == 'val'
    out = str(tmp_path / 'curves.png')
    keys = plot_logs.plot([tiny_run['work_dir'], tiny_run['work_dir']], None, ['a', 'b'], out)
    assert {'loss', 'loss_cls', 'loss_dist', 'agreement', 'accuracy/top1'} <= set(keys)
    assert osp.getsize(out) > 10000
    with pytest.raises(SystemExit, match='available'):
        plot_logs.plot([tiny_run['work_dir']], ['no_such_key'], None, out)
