"""The recipe's augmentations on gray images (deit_plugin/datasets/transforms.py) and the
in-memory Fashion-MNIST's index ranges."""

import numpy as np
import pytest
from mmpretrain.registry import TRANSFORMS

import deit_plugin  # noqa: F401
from deit_plugin.datasets import FashionMNISTIdx


def gray(seed=0, shape=(28, 28)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_mmpretrain_random_erasing_fails_on_gray_and_ours_erases_a_patch():
    img = gray()
    upstream = TRANSFORMS.build(
        dict(type='RandomErasing', erase_prob=1.0, mode='rand', fill_color=72.9, fill_std=90.0)
    )
    with pytest.raises(ValueError, match='broadcast'):
        upstream(dict(img=img.copy()))
    ours = TRANSFORMS.build(
        dict(
            type='deit_plugin.RandomErasing',
            erase_prob=1.0,
            mode='const',
            fill_color=7,
            min_area_ratio=0.1,
            max_area_ratio=0.2,
        )
    )

    def slack(area):  # h, w = round(sqrt(area·r)), round(sqrt(area/r)), r in [3/10, 10/3]
        return 0.5 * np.sqrt(area) * (np.sqrt(10 / 3) + np.sqrt(3 / 10)) + 0.25

    np.random.seed(0)
    areas = []
    for _ in range(50):
        out = ours(dict(img=img.copy()))['img']
        assert out.shape == img.shape and out.dtype == np.uint8
        changed = out != img
        assert set(np.unique(out[changed])) == {7}
        rows, cols = np.nonzero(changed)  # one rectangle, filled
        box = out[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert (box == 7).all()
        low, high = 0.1 * img.size, 0.2 * img.size
        assert low - slack(low) <= box.size <= high + slack(high)
        areas.append(box.size)
    # the area ratio is uniform in [0.1, 0.2]: mean 0.15 of the image (draws within ±0.01)
    assert abs(np.mean(areas) / img.size - 0.15) < 0.01


def test_random_erasing_keeps_colour_images_per_channel():
    img = np.zeros((16, 16, 3), dtype=np.uint8)
    t = TRANSFORMS.build(
        dict(
            type='deit_plugin.RandomErasing', erase_prob=1.0, mode='const', fill_color=(10, 20, 30)
        )
    )
    out = t(dict(img=img))['img']
    erased = out.any(axis=2)
    assert erased.any()
    assert (out[erased] == [10, 20, 30]).all()


def test_randaugment_needs_three_channels_and_gray_as_rgb_runs_every_policy():
    img = FashionMNISTIdx(split='train', indices=1).get_data_info(0)['img']
    policy = [dict(type='Equalize', prob=1.0)]
    plain = TRANSFORMS.build(
        dict(type='RandAugment', policies=[policy[0]], num_policies=1, magnitude_level=9)
    )
    # mmcv's equalize indexes a channel axis that a (28, 28) image does not have
    with pytest.raises(IndexError, match='array is 2-dimensional, but 3 were indexed'):
        plain(dict(img=img.copy(), img_shape=img.shape))
    wrapped = TRANSFORMS.build(
        dict(
            type='deit_plugin.GrayAsRGB',
            transforms=[
                dict(
                    type='RandAugment',
                    policies='timm_increasing',
                    num_policies=2,
                    total_level=10,
                    magnitude_level=9,
                    magnitude_std=0.5,
                    hparams=dict(pad_val=0),
                )
            ],
        )
    )
    np.random.seed(0)  # mmpretrain's transforms draw from numpy's global generator
    changed = 0
    for i in range(30):
        out = wrapped(dict(img=img.copy(), img_shape=img.shape))
        assert out['img'].shape == img.shape and out['img'].dtype == np.uint8
        changed += int((out['img'] != img).any())
    # each of the 2 ops runs with p=0.5 and some leave this image as it is: about 2/3 change it
    assert changed >= 10
    # equalize on the RGB copy is equalize of the gray image (all channels equal)
    eq = TRANSFORMS.build(
        dict(
            type='deit_plugin.GrayAsRGB',
            transforms=[
                dict(type='RandAugment', policies=policy, num_policies=1, magnitude_level=9)
            ],
        )
    )
    import mmcv

    expected = mmcv.imequalize(np.repeat(img[..., None], 3, axis=2))[..., 0]
    np.testing.assert_array_equal(eq(dict(img=img.copy(), img_shape=img.shape))['img'], expected)


def test_gray_as_rgb_refuses_colour_images():
    t = TRANSFORMS.build(
        dict(type='deit_plugin.GrayAsRGB', transforms=[dict(type='RandomFlip', prob=1.0)])
    )
    with pytest.raises(ValueError, match='gray HxW'):
        t(dict(img=np.zeros((4, 4, 3), dtype=np.uint8)))


def test_index_range_takes_a_contiguous_slice_of_the_file():
    full = FashionMNISTIdx(split='train')
    part = FashionMNISTIdx(split='train', index_range=(4500, 5000))
    assert len(part) == 500
    for i in (0, 499):
        np.testing.assert_array_equal(
            part.get_data_info(i)['img'], full.get_data_info(4500 + i)['img']
        )
    with pytest.raises(ValueError, match='reaches past'):
        FashionMNISTIdx(split='test', index_range=(0, 10001))
    with pytest.raises(ValueError, match='start < stop'):
        FashionMNISTIdx(split='train', index_range=(10, 10))
