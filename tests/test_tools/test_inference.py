"""Inference with a trained student: deit_plugin.apis (mmpretrain's inferencer interface) and
demo/image_demo.py, on a real photo shipped in the scikit-image wheel."""

import os.path as osp

import numpy as np
import pytest
import skimage
import torch
from tool_modules import ROOT, load_script

from deit_plugin.apis import DistilledInferencer, inference_model, init_student, student_config

image_demo = load_script('demo/image_demo.py')
PHOTO = osp.join(osp.dirname(skimage.__file__), 'data', 'chelsea.png')  # 300x451 RGB cat
CLASSES = [
    '0_t-shirt_top',
    '1_trouser',
    '2_pullover',
    '3_dress',
    '4_coat',
    '5_sandal',
    '6_shirt',
    '7_sneaker',
    '8_bag',
    '9_ankle_boot',
]


def test_student_config_drops_the_teacher():
    cfg = student_config(osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py'))
    assert cfg.model.teacher is None and cfg.model.predict_with_teacher is False
    assert cfg.model.head.distillation == 'none'
    # a head that leaves distillation to its default ('hard') is made a student head too
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py'))
    cfg.model.head.pop('distillation')
    cfg.model.head.pop('distill_loss', None)
    student = student_config(cfg)
    assert student.model.head.distillation == 'none'
    assert MODELS.build(student.model).teacher is None
    # other models are left as they are
    teacher = student_config(osp.join(ROOT, 'configs/fashion_mnist/resnet_cifar_teacher.py'))
    assert teacher.model.type == 'ImageClassifier'


def reference_scores(demo_student, image_path):
    """The same prediction computed by hand: grayscale read, resize to 28x28 (bilinear, as
    mmcv's Resize), the model's preprocessor and both heads."""
    import mmcv

    model = init_student(demo_student['config'], demo_student['ckpt'], device='cpu')
    img = mmcv.imread(image_path, flag='grayscale')
    img = mmcv.imresize(img, (28, 28))
    data = dict(inputs=[torch.from_numpy(img)[None]], data_samples=None)
    inputs = model.data_preprocessor(data, False)['inputs']
    with torch.no_grad():
        cls_logits, dist_logits = model.head.logits(model.extract_feat(inputs))
    return (
        torch.softmax((cls_logits + dist_logits) / 2, 1)[0],
        torch.softmax(cls_logits, 1)[0],
        torch.softmax(dist_logits, 1)[0],
    )


@pytest.mark.slow
def test_inferencer_returns_fused_prediction_and_each_head(demo_student):
    inferencer = DistilledInferencer(
        demo_student['config'], pretrained=demo_student['ckpt'], device='cpu'
    )
    assert list(inferencer.classes) == CLASSES  # from the checkpoint's dataset_meta
    result = inferencer(PHOTO)[0]
    fused, cls, dist = reference_scores(demo_student, PHOTO)
    np.testing.assert_allclose(result['pred_scores'], fused.numpy(), atol=1e-5)
    np.testing.assert_allclose(result['cls_pred_scores'], cls.numpy(), atol=1e-5)
    np.testing.assert_allclose(result['dist_pred_scores'], dist.numpy(), atol=1e-5)
    assert result['pred_class'] == CLASSES[int(fused.argmax())]
    assert result['cls_pred_class'] == CLASSES[int(cls.argmax())]
    assert result['dist_pred_class'] == CLASSES[int(dist.argmax())]
    # the weights are the trained ones, not a fresh initialisation
    ckpt = torch.load(demo_student['ckpt'], map_location='cpu', weights_only=False)
    assert torch.equal(
        inferencer.model.state_dict()['head.layers.head.weight'],
        ckpt['state_dict']['head.layers.head.weight'],
    )
    assert inferencer.model.teacher is None
    # the same config named as a package resource
    by_name = DistilledInferencer(
        'deit_plugin::fashion_mnist/deit_tiny_distill.py',
        pretrained=demo_student['ckpt'],
        device='cpu',
    )(PHOTO)[0]
    np.testing.assert_allclose(by_name['pred_scores'], result['pred_scores'], atol=1e-6)


@pytest.mark.slow
def test_inference_model_helper_and_arrays(demo_student):
    import mmcv

    by_path = inference_model(
        demo_student['config'], PHOTO, pretrained=demo_student['ckpt'], device='cpu'
    )
    # a colour array is converted to gray like a file
    by_array = inference_model(
        demo_student['config'], mmcv.imread(PHOTO), pretrained=demo_student['ckpt'], device='cpu'
    )
    np.testing.assert_allclose(by_path['pred_scores'], by_array['pred_scores'], atol=1e-4)


@pytest.mark.slow
def test_mmpretrain_get_model_loads_the_plugin_config(demo_student):
    """mmpretrain.apis.get_model builds the whole distillation model (teacher included)."""
    from mmpretrain.apis import get_model

    model = get_model(demo_student['config'], pretrained=demo_student['ckpt'], device='cpu')
    assert type(model).__name__ == 'DistillationClassifier' and model.teacher is not None
    assert list(model._dataset_meta['classes']) == CLASSES
    # its teacher is not loaded, so predicting with it is refused with the way out
    with pytest.raises(RuntimeError, match='DistilledInferencer'):
        model.predict(torch.zeros(1, 1, 28, 28))


@pytest.mark.slow
def test_image_demo_prints_top5_fused_and_per_head(demo_student, tmp_path, capsys):
    show_dir = tmp_path / 'vis'
    image_demo.main(
        [
            PHOTO,
            demo_student['config'],
            demo_student['ckpt'],
            '--show-dir',
            str(show_dir),
            '--device',
            'cpu',
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    fused, cls, dist = reference_scores(demo_student, PHOTO)
    for title, scores in (('fused:', fused), ('class head:', cls), ('distillation head:', dist)):
        at = lines.index(title)
        printed = [line.split() for line in lines[at + 1 : at + 6]]
        top5 = torch.topk(scores, 5)
        assert [name for _, name in printed] == [CLASSES[i] for i in top5.indices]
        np.testing.assert_allclose([float(s) for s, _ in printed], top5.values.numpy(), atol=1e-4)
    assert (show_dir / 'chelsea.png').is_file()


@pytest.mark.slow
def test_no_checkpoint_or_one_that_does_not_fit_is_refused(demo_student, tmp_path):
    """mmpretrain would predict with random weights (no load_from) or partly random ones (a
    non-strict load that only logs the mismatch)."""
    with pytest.raises(ValueError, match='no student checkpoint: .*Pass pretrained='):
        DistilledInferencer(demo_student['config'])
    with pytest.raises(FileNotFoundError, match="missing.pth' does not exist"):
        inference_model(demo_student['config'], PHOTO, pretrained=str(tmp_path / 'missing.pth'))
    # the teacher's checkpoint is no student checkpoint
    with pytest.raises(ValueError, match=r'(?s)does not fit .*missing keys .*Give the checkpoint'):
        DistilledInferencer(demo_student['config'], pretrained=demo_student['teacher_ckpt'])
    with pytest.raises(ValueError, match=r'(?s)does not fit .*missing keys'):
        init_student(demo_student['config'], demo_student['teacher_ckpt'])
    # a student checkpoint with one tensor left out
    ckpt = torch.load(demo_student['ckpt'], map_location='cpu', weights_only=False)
    del ckpt['state_dict']['head.layers.head_dist.bias']
    partial = str(tmp_path / 'partial.pth')
    torch.save(ckpt, partial)
    with pytest.raises(ValueError, match=r'missing keys \(1\): head.layers.head_dist.bias'):
        inference_model(demo_student['config'], PHOTO, pretrained=partial)


def test_image_demo_names_a_missing_checkpoint(demo_student, tmp_path):
    with pytest.raises(SystemExit, match='checkpoint .*missing.pth.* does not exist'):
        image_demo.main([PHOTO, demo_student['config'], str(tmp_path / 'missing.pth')])
