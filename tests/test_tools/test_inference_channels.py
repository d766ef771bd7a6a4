"""The inferencer reads images with the channel count of the model, not of the config's
pipeline: the demo's own config (in-memory Fashion-MNIST, no ``LoadImageFromFile``) classifies
colour and gray photos through demo/image_demo.py."""

import os.path as osp

import numpy as np
import skimage
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from tool_modules import ROOT, load_script

from deit_plugin.apis import DistilledInferencer, student_config
from deit_plugin.apis.inference import model_in_channels
from deit_plugin.utils.config import model_with_data_preprocessor

image_demo = load_script('demo/image_demo.py')
DEMO_CFG = osp.join(ROOT, 'configs/fashion_mnist/study/deit_tiny_student_v2.py')
COLOUR = osp.join(osp.dirname(skimage.__file__), 'data', 'chelsea.png')  # 300x451 RGB
GRAY = osp.join(osp.dirname(skimage.__file__), 'data', 'camera.png')  # 512x512 gray


def demo_student_checkpoint(path: str) -> str:
    """The demo's student (1-channel DeiT⚗), random weights, as a training checkpoint."""
    cfg = student_config(DEMO_CFG)
    torch.manual_seed(0)
    model = MODELS.build(model_with_data_preprocessor(cfg))
    model.init_weights()
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return path


def test_in_channels_come_from_the_first_convolution_not_the_teacher():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py'))
    model = MODELS.build(model_with_data_preprocessor(cfg))
    assert model_in_channels(model) == 1  # the patch embedding, not the ResNet teacher's stem
    model.backbone.patch_embed.projection = torch.nn.Conv2d(3, 64, 4, 4)
    assert model_in_channels(model) == 3


def test_image_demo_with_the_demo_config_classifies_colour_and_gray_photos(tmp_path, capsys):
    ckpt = demo_student_checkpoint(str(tmp_path / 'student.pth'))
    results = [
        image_demo.main([image, DEMO_CFG, ckpt, '--device', 'cpu']) for image in (COLOUR, GRAY)
    ]
    for result in results:
        assert result['pred_scores'].shape == (10,)
        np.testing.assert_allclose(result['pred_scores'].sum(), 1.0, atol=1e-5)
    # both read as 1-channel images and resized to 28x28: the same as preprocessing by hand
    inferencer = DistilledInferencer(DEMO_CFG, pretrained=ckpt, device='cpu')
    assert inferencer.color_type == 'grayscale'
    import mmcv

    img = mmcv.imresize(mmcv.imread(COLOUR, flag='grayscale'), (28, 28))
    model = inferencer.model
    inputs = model.data_preprocessor(dict(inputs=[torch.from_numpy(img)[None]]), False)['inputs']
    with torch.no_grad():
        cls_logits, dist_logits = model.head.logits(model.extract_feat(inputs))
    fused = torch.softmax((cls_logits + dist_logits) / 2, 1)[0].numpy()
    np.testing.assert_allclose(results[0]['pred_scores'], fused, atol=1e-5)
    assert 'fused:' in capsys.readouterr().out
