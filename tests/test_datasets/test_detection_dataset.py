"""The generated detection set: real pixels, tight boxes, COCO json that mmdet reads."""

import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from tool_modules import load_tool

from deit_plugin.datasets import find_fashion_mnist, load_fashion_mnist

det = load_tool('dataset_converters/fashion_mnist_detection.py')


@pytest.fixture(scope='module')
def sources():
    items, labels = load_fashion_mnist('test')
    return det.load_backgrounds(), items[:500], labels[:500]


def test_backgrounds_are_the_real_photos_of_both_wheels(sources):
    backgrounds, _, _ = sources
    assert len(backgrounds) == len(det.SKIMAGE_PHOTOS) + len(det.SKLEARN_PHOTOS) == 16
    assert all(b.dtype == np.uint8 and b.ndim == 3 and b.shape[2] == 3 for b in backgrounds)
    assert backgrounds[0].shape == (512, 512, 3)  # skimage astronaut
    assert backgrounds[-1].shape == (427, 640, 3)  # sklearn flower.jpg
    assert all(b.std() > 10 for b in backgrounds)  # photos, not flat fills


def test_boxes_are_the_tight_boxes_of_the_pasted_objects(sources):
    backgrounds, items, labels = sources
    rng = np.random.default_rng(1)
    n_objects = 0
    for _ in range(30):
        image, background, objects = det.render_image(rng, backgrounds, items, labels)
        assert image.shape == background.shape == (64, 64, 3)
        changed = (image != background).any(-1)
        covered = np.zeros_like(changed)
        for obj in objects:
            x1, y1, x2, y2 = obj['bbox']
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
            assert 16 * 0.1 < max(x2 - x1, y2 - y1) <= 32
            assert not (covered[y1:y2, x1:x2]).any()  # no overlap
            covered[y1:y2, x1:x2] = True
            # the changed pixels inside the box touch all four sides of it: the box is tight
            inside = changed[y1:y2, x1:x2]
            assert inside[0].any() and inside[-1].any()
            assert inside[:, 0].any() and inside[:, -1].any()
            assert obj['mask'].sum() == obj['mask'][y1:y2, x1:x2].sum()
            assert 0 <= obj['label'] < 10
        # nothing outside the boxes was painted
        assert not (changed & ~covered).any()
        assert 1 <= len(objects) <= 3
        n_objects += len(objects)
    assert n_objects > 40


@pytest.mark.slow
def test_generated_set_is_deterministic_coco_read_by_mmdet(tmp_path):
    from mmdet.datasets import CocoDataset
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    counts = det.generate(str(a), num_train=20, num_val=6, seed=3)
    assert counts == dict(train=20, train_10pct=2, val=6)
    det.generate(str(b), num_train=20, num_val=6, seed=3)
    det.generate(str(c), num_train=20, num_val=6, seed=4)
    read = lambda root, name: (root / 'annotations' / name).read_text()  # noqa: E731
    assert read(a, 'train.json') == read(b, 'train.json')
    assert (a / 'train' / '000007.png').read_bytes() == (b / 'train' / '000007.png').read_bytes()
    assert read(a, 'train.json') != read(c, 'train.json')

    coco = json.loads(read(a, 'train.json'))
    assert min(im['id'] for im in coco['images']) == 1
    assert min(an['id'] for an in coco['annotations']) == 1
    assert sorted(c['id'] for c in coco['categories']) == list(range(1, 11))
    sub = json.loads(read(a, 'train_10pct.json'))
    assert [im['id'] for im in sub['images']] == [1, 2]
    assert sub['annotations'] == [an for an in coco['annotations'] if an['image_id'] <= 2]

    ds = CocoDataset(
        data_root=str(a),
        ann_file='annotations/train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=det.CLASSES),
        pipeline=[],
        test_mode=True,
    )
    assert len(ds) == 20
    info = ds[6]
    img = cv2.imread(info['img_path'])
    assert img.shape == (64, 64, 3)
    boxes = sorted(inst['bbox'] for inst in info['instances'])
    expected = sorted(
        [an['bbox'][0], an['bbox'][1], an['bbox'][0] + an['bbox'][2], an['bbox'][1] + an['bbox'][3]]
        for an in coco['annotations']
        if an['image_id'] == 7
    )
    assert boxes == expected and len(boxes) >= 1
    labels = sorted(inst['bbox_label'] for inst in info['instances'])
    assert labels == sorted(
        an['category_id'] - 1 for an in coco['annotations'] if an['image_id'] == 7
    )
    assert osp.isfile(a / 'meta.json')


def test_another_fashion_mnist_folder_regenerates_the_set(tmp_path, capsys):
    src = find_fashion_mnist()
    copy = tmp_path / 'copy'
    copy.mkdir()
    for name in os.listdir(src):
        os.symlink(osp.join(src, name), copy / name)
    out = tmp_path / 'det'
    det.generate(str(out), num_train=3, num_val=2, seed=1)
    ann = out / 'annotations' / 'train.json'
    ann.write_text('{"stale": true}')
    det.generate(str(out), num_train=3, num_val=2, seed=1)  # same settings: kept as it is
    assert ann.read_text() == '{"stale": true}'
    det.generate(str(out), num_train=3, num_val=2, seed=1, src=str(copy))
    assert len(json.loads(ann.read_text())['images']) == 3
    assert json.loads((out / 'meta.json').read_text())['src'] == str(copy)
    with pytest.raises(ValueError, match='at least 1'):
        det.generate(str(out), num_train=0, num_val=2)
    assert det.main(['--out', str(out), '--num-val', '0']) == 2
    assert 'at least 1' in capsys.readouterr().err


def test_plain_background_is_the_same_layout_in_fashion_mnist_gray(sources):
    backgrounds, items, labels = sources
    for seed in range(10):
        photo, _, photo_objs = det.render_image(
            np.random.default_rng(seed), backgrounds, items, labels
        )
        plain, canvas, objs = det.render_image(
            np.random.default_rng(seed), backgrounds, items, labels, background='plain'
        )
        assert [(o['bbox'], o['label']) for o in objs] == [
            (o['bbox'], o['label']) for o in photo_objs
        ]
        assert all((a['mask'] == b['mask']).all() for a, b in zip(objs, photo_objs))
        assert not canvas.any()
        assert (plain[..., 0] == plain[..., 1]).all() and (plain[..., 1] == plain[..., 2]).all()
        covered = np.logical_or.reduce([o['mask'] for o in objs])
        assert not plain[~covered].any()  # black outside the items
        assert (plain[covered, 0] > 25).all()  # the items' own gray levels above the threshold
        assert (photo[covered] != plain[covered]).any()  # the photo set is tinted
    with pytest.raises(ValueError, match="background must be one of .*'plain'"):
        det.render_image(np.random.default_rng(0), backgrounds, items, labels, background='white')
