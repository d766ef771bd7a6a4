"""Data transforms that mmpretrain's versions restrict to 3-channel images."""

import numpy as np
from mmpretrain.datasets.transforms import RandomErasing as _MMPretrainRandomErasing

from deit_plugin.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomErasing(_MMPretrainRandomErasing):
    """mmpretrain's ``RandomErasing`` (Zhong et al., 2017; DeiT's recipe uses p=0.25) for
    images with any number of channels, gray ``HxW`` ones included.

    mmpretrain 1.2.0 fills the erased patch with a ``(h, w, 3)`` array, which cannot be written
    into a gray image (see docs/notes/upstream_workarounds.md). Here the patch has the image's
    own shape; ``fill_color`` and ``fill_std`` are one number, or one value per channel (the
    first C values are used for a C-channel image). Arguments and randomness are mmpretrain's.
    """

    def _per_channel(self, value, img: np.ndarray) -> np.ndarray:
        channels = img.shape[2] if img.ndim == 3 else 1
        values = np.asarray(value, dtype=np.float64).reshape(-1)
        if values.size == 1:
            values = np.repeat(values, channels)
        if values.size < channels:
            raise ValueError(
                f'RandomErasing: {values.size} fill values for a {channels}-channel '
                f'image: give one number or one value per channel.'
            )
        values = values[:channels]
        return values if img.ndim == 3 else values[0]

    def _fill_pixels(self, img: np.ndarray, top: int, left: int, h: int, w: int) -> np.ndarray:
        shape = img[top : top + h, left : left + w].shape
        if self.mode == 'const':
            patch = np.broadcast_to(self._per_channel(self.fill_color, img), shape)
            patch = patch.astype(np.uint8)
        elif self.fill_std is None:
            patch = np.random.uniform(0, 256, shape).astype(np.uint8)
        else:
            patch = np.random.normal(
                self._per_channel(self.fill_color, img),
                self._per_channel(self.fill_std, img),
                shape,
            )
            patch = np.clip(patch.astype(np.int32), 0, 255).astype(np.uint8)
        img[top : top + h, left : left + w] = patch
        return img


@TRANSFORMS.register_module()
class GrayAsRGB:
    """Run ``transforms`` written for 3-channel images on a gray image.

    The gray ``HxW`` (or ``HxWx1``) image is repeated into three equal channels, the transforms
    run, and the first channel is kept. Needed for mmpretrain's ``RandAugment`` on gray images:
    its ``Equalize`` policy calls ``mmcv.imequalize``, which indexes three channels
    (docs/notes/upstream_workarounds.md). With three equal channels every colour operation
    (``ColorTransform``, ``Equalize``, ...) leaves them equal, so keeping one loses nothing.

    Args:
        transforms (list[dict]): The transforms, as in a pipeline.
    """

    def __init__(self, transforms: list) -> None:
        from mmengine.dataset import Compose
        from mmpretrain.registry import TRANSFORMS as MMPRETRAIN_TRANSFORMS

        if not transforms:
            raise ValueError('GrayAsRGB needs a non-empty list of transforms.')
        self.transforms = Compose(
            [MMPRETRAIN_TRANSFORMS.build(t) if isinstance(t, dict) else t for t in transforms]
        )

    def __call__(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 3 and img.shape[2] != 1:
            raise ValueError(
                f'GrayAsRGB expects a gray HxW or HxWx1 image, got shape '
                f'{img.shape}: drop the wrapper for colour images.'
            )
        keep_dim = img.ndim == 3
        results['img'] = np.repeat(img.reshape(img.shape[:2] + (1,)), 3, axis=2)
        results = self.transforms(results)
        out = results['img'][..., 0]
        results['img'] = np.ascontiguousarray(out[..., None] if keep_dim else out)
        results['img_shape'] = out.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(transforms={self.transforms!r})'
