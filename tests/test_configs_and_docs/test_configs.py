import os.path as osp

import pytest
from mmengine.config import Config
from mmpretrain.registry import MODELS
from tool_modules import ROOT

from deit_plugin.utils.config import model_with_data_preprocessor


def load(name):
    return Config.fromfile(osp.join(ROOT, 'configs', name))


@pytest.mark.parametrize(
    'name,arch,width',
    [
        ('deit_ti_distill.py', 'deit-tiny', 192),
        ('deit_s_distill.py', 'deit-small', 384),
        ('deit_b_distill.py', 'deit-base', 768),
    ],
)
def test_imagenet_configs_follow_the_official_recipe(name, arch, width):
    cfg = load(name)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports.imports == ['deit_plugin']
    m = cfg.model
    assert m.type == 'deit_plugin.DistillationClassifier'
    assert m.backbone.type == 'deit_plugin.DistilledVisionTransformer'
    assert (m.backbone.arch, m.head.in_channels, m.backbone.drop_path_rate) == (arch, width, 0.1)
    assert (m.head.distillation, m.head.alpha, m.head.fusion) == ('hard', 0.5, 'mean')
    assert m.head.loss.label_smooth_val == 0.1
    assert [(a.type, a.alpha) for a in m.train_cfg.augments] == [('Mixup', 0.8), ('CutMix', 1.0)]
    assert m.teacher.endswith('configs/teachers/regnety_160.py') and osp.isfile(m.teacher)
    opt = cfg.optim_wrapper
    assert opt.constructor == 'deit_plugin.StudentOptimWrapperConstructor'
    assert 'clip_grad' not in opt
    assert (opt.optimizer.type, opt.optimizer.lr, opt.optimizer.weight_decay) == (
        'AdamW',
        5e-4 * 1024 / 512,
        0.05,
    )
    assert set(opt.paramwise_cfg.custom_keys) == {'.cls_token', '.dist_token', '.pos_embed'}
    warmup, cosine = cfg.param_scheduler
    assert (warmup.end, warmup.start_factor * opt.optimizer.lr) == (5, pytest.approx(1e-6))
    assert (cosine.end, cosine.eta_min, cfg.train_cfg.max_epochs) == (300, 1e-5, 300)
    assert cfg.train_dataloader.sampler.type == 'RepeatAugSampler'
    assert cfg.train_dataloader.sampler.num_repeats == 3
    pipeline = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert pipeline['RandAugment'].magnitude_level == 9
    assert pipeline['RandAugment'].magnitude_std == 0.5
    assert pipeline['RandomErasing'].erase_prob == 0.25
    hooks = {h.type: h for h in cfg.custom_hooks}
    assert 'deit_plugin.DistillationHook' in hooks
    assert hooks['EMAHook'].momentum == pytest.approx(1 - 0.99996)


@pytest.mark.slow
def test_deit_s_distill_builds_the_regnety_160_teacher_and_loads_the_official_file(tmp_path):
    """configs/deit_s_distill.py builds the RegNetY-16GF teacher through timm; the official
    regnety_160-a5fe301d.pth holds timm-named weights under 'model' (timm's regnet _filter_fn
    unwraps exactly that); our teacher must give timm's logits on those weights."""
    import timm
    import torch

    cfg = load('deit_s_distill.py')
    assert osp.basename(cfg.model.teacher_ckpt) == 'regnety_160-a5fe301d.pth'
    torch.manual_seed(0)
    ref = timm.create_model('regnety_160', pretrained=False).eval()
    with torch.no_grad():  # non-trivial BN statistics so that eval mode matters
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    ckpt = tmp_path / 'regnety_160-a5fe301d.pth'
    torch.save({'model': ref.state_dict()}, ckpt)
    model = MODELS.build(dict(model_with_data_preprocessor(cfg), teacher_ckpt=str(ckpt)))
    assert type(model.teacher).__name__ == 'TimmClassifier'
    assert model.teacher.model.num_classes == 1000
    # same ImageNet normalisation and RGB order on both sides: no conversion
    assert not model.renormalise and not model.flip_channels_for_teacher
    assert model.teacher_channels_last
    n_teacher = sum(p.numel() for p in model.teacher.parameters())
    assert 80e6 < n_teacher < 86e6  # RegNetY-16GF: 83.6M parameters
    model.load_teacher_checkpoint()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = ref(x)
    ours = model.teacher_logits(x)
    assert ours.shape == (2, 1000)
    assert (ours - expected).abs().max() <= 1e-4
