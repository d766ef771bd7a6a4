"""A user's project folder for the recipe tests: real photos in the dataset layouts the configs
expect, and random-weight checkpoints under the file names and in the layouts the configs name.

The configs name their data and checkpoints relative to the folder the tools run in
(``data/imagenet``, ``checkpoints/regnety_160-a5fe301d.pth``, ...); the tests run the tools
from this folder, so the configs are used as written.
"""

import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List

import numpy as np
import torch

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(TESTS)

# scikit-image's photos (shipped in its wheel) with the ImageNet-1k class each shows, or a
# stand-in class for the astronaut (ImageNet has none): (file stem, wnid, class index)
PHOTOS = (
    ('chelsea', 'n02123045', 281),  # tabby cat
    ('coffee', 'n07920052', 967),  # espresso
    ('rocket', 'n04266014', 812),  # space shuttle
    ('astronaut', 'n03595614', 610),
)  # jersey (stand-in)

REGNETY = 'regnety_160-a5fe301d.pth'
RESNET50 = 'resnet50_8xb32_in1k_20210831-ea4938fc.pth'
DEIT_S_OFFICIAL = 'deit_small_distilled_patch16_224-649709d9.pth'
DEIT_B_OFFICIAL = 'deit_base_distilled_patch16_224-df68dfff.pth'


def photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    return img[..., :3] if img.ndim == 3 else np.stack([img] * 3, -1)


def save_jpeg(img: np.ndarray, path: str) -> None:
    from PIL import Image

    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path, quality=90)


def make_imagenet(root: str) -> None:
    """mmpretrain's ImageNet layout (``ImageNet(data_root, split=...)``): ``train/<wnid>/*.JPEG``
    and ``val/*.JPEG``, with ``meta/train.txt`` and ``meta/val.txt`` ("<file> <class>")."""
    train, val = [], []
    for i, (name, wnid, label) in enumerate(PHOTOS):
        save_jpeg(photo(name), osp.join(root, 'train', wnid, f'{wnid}_{name}.JPEG'))
        train.append(f'{wnid}/{wnid}_{name}.JPEG {label}')
        if i < 2:
            file = f'ILSVRC2012_val_{i + 1:08d}.JPEG'
            save_jpeg(photo(name), osp.join(root, 'val', file))
            val.append(f'{file} {label}')
    os.makedirs(osp.join(root, 'meta'))
    for split, lines in (('train', train), ('val', val)):
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')


def make_image_folder(root: str) -> None:
    """mmpretrain's ``CustomDataset`` layout (configs/custom): ``train/<class>/*.jpg`` and
    ``val/<class>/*.jpg``: four classes, one photo each."""
    for name, _, _ in PHOTOS:
        for split in ('train', 'val'):
            save_jpeg(photo(name), osp.join(root, split, name, f'{name}.jpg'))


def save_regnety_160(path: str) -> str:
    """``regnety_160-a5fe301d.pth`` as distributed with DeiT: timm's weights under ``model``."""
    import timm

    torch.manual_seed(0)
    torch.save({'model': timm.create_model('regnety_160', pretrained=False).state_dict()}, path)
    return path


def save_resnet50_in1k(path: str) -> str:
    """mmpretrain's ``resnet50_8xb32_in1k`` checkpoint layout: ``meta`` and ``state_dict`` with
    ``backbone.*`` and ``head.fc.*`` keys."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmpretrain.registry import MODELS

    cfg: Config = get_config('mmpretrain::resnet/resnet50_8xb32_in1k.py')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save(
        {'meta': {'epoch': 100, 'mmcls_version': '0.16.0'}, 'state_dict': model.state_dict()}, path
    )
    return path


def save_official_deit(arch: str, path: str) -> str:
    """An official DeiT⚗ checkpoint (``{'model': timm state dict}``), random weights, converted
    with tools/model_converters/deit_to_plugin.py as the configs' comments say; returns the
    converted file (``..._plugin.pth`` next to it)."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model(f'deit_{arch}_distilled_patch16_224', pretrained=False)
    torch.save({'model': model.state_dict()}, path)
    out = path.replace(path[path.rindex('-') :], '_plugin.pth')
    run_python([osp.join(ROOT, 'tools/model_converters/deit_to_plugin.py'), path, out])
    return out


def env() -> Dict[str, str]:
    """Subprocess environment: this checkout's deit_plugin, one thread."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def run_python(argv: List[str], cwd: str = None) -> str:
    """Run a Python script; on failure, fail with its output."""
    proc = subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(argv)} exited {proc.returncode}:\n{proc.stdout[-6000:]}')
    return proc.stdout


def mmpretrain_tool(name: str) -> str:
    """mmpretrain's own tools/train.py or tools/test.py, shipped in its wheel."""
    import mmpretrain

    path = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools', name)
    assert osp.isfile(path), f'mmpretrain ships no {path}'
    return path


def doc_python_block(doc: str, heading: str) -> str:
    """The first ```python block after ``heading`` in ``doc`` (a path under the repository)."""
    with open(osp.join(ROOT, doc), encoding='utf-8') as f:
        text = f.read()
    assert heading in text, f'{doc} has no heading {heading!r}'
    after = text.split(heading, 1)[1]
    return after.split('```python\n', 1)[1].split('```', 1)[0]
