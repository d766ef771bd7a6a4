"""Generate a small COCO-format detection set from real pixels: Fashion-MNIST items pasted onto
crops of the photos bundled in the scikit-image and scikit-learn wheels.

Each image is a random crop of a real photo (astronaut, coffee, rocket, the Hubble deep field,
gravel, ...; scikit-learn's ``china.jpg``/``flower.jpg``) resized to ``img_size`` pixels, with
1 to ``max_objects`` Fashion-MNIST items pasted on it: each scaled to a random side in
``[min_side, max_side]``, tinted with a random saturated colour (brightness follows the item's
gray level), placed without overlap (boxes at least ``gap`` pixels apart). An item covers the
pixels where its gray level exceeds ``threshold``; its box is the tight box of those pixels.
Training images take items from the Fashion-MNIST train split, validation images from the test
split. Everything is deterministic for a seed.

``--background plain`` draws the same set on black canvases instead, in Fashion-MNIST's own
domain: each item keeps its gray levels (no tint; R = G = B), and pixels at or below
``threshold`` stay black as in the dataset. The random draws are those of the photo set, so a
plain set has the same items, sizes, positions, boxes and masks as the photo set of the same
seed; only the canvas and the colours differ. Layout::

    OUT/train/000001.png ...   OUT/val/000001.png ...
    OUT/annotations/train.json   all training images
    OUT/annotations/train_10pct.json   the first 10% of them (the scarce-data runs)
    OUT/annotations/val.json

Image, annotation and category ids start at 1 (pycocotools' matcher uses 0 for "unmatched").

Usage::

    python tools/dataset_converters/fashion_mnist_detection.py [--out DIR] [--num-train N]
        [--num-val N] [--img-size PX] [--seed S] [--background photo|plain]
"""

import argparse
import colorsys
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Sequence, Tuple

import numpy as np

from deit_plugin.datasets import class_slugs, find_fashion_mnist, load_fashion_mnist

CLASSES = tuple(class_slugs())
# Photos shipped inside the scikit-image wheel (no download: the pooch-fetched ones are left
# out) and the scikit-learn wheel. Gray ones are used as gray RGB.
SKIMAGE_PHOTOS = (
    'astronaut',
    'brick',
    'camera',
    'cat',
    'coffee',
    'coins',
    'grass',
    'gravel',
    'hubble_deep_field',
    'immunohistochemistry',
    'moon',
    'page',
    'rocket',
    'text',
)
SKLEARN_PHOTOS = ('china.jpg', 'flower.jpg')
BACKGROUNDS = ('photo', 'plain')


def load_backgrounds() -> List[np.ndarray]:
    """The real photos, as uint8 RGB arrays (``H, W, 3``)."""
    import skimage.data
    from sklearn.datasets import load_sample_image

    photos = [getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS]
    photos += [load_sample_image(name) for name in SKLEARN_PHOTOS]
    out = []
    for p in photos:
        p = np.asarray(p)
        if p.dtype != np.uint8:
            raise TypeError(f'expected uint8 photos, got {p.dtype}')
        if p.ndim == 2:
            p = np.repeat(p[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(p[..., :3]))
    return out


def _random_crop(rng: np.random.Generator, photo: np.ndarray, img_size: int) -> np.ndarray:
    import cv2

    h, w = photo.shape[:2]
    side = int(rng.uniform(0.2, 0.6) * min(h, w))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return cv2.resize(
        photo[y : y + side, x : x + side], (img_size, img_size), interpolation=cv2.INTER_AREA
    )


def _random_tint(rng: np.random.Generator) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.5, 1.0), rng.uniform(0.75, 1.0))
    return np.array(rgb, dtype=np.float32)


def render_image(
    rng: np.random.Generator,
    backgrounds: Sequence[np.ndarray],
    items: np.ndarray,
    labels: np.ndarray,
    img_size: int = 64,
    max_objects: int = 3,
    min_side: int = 16,
    max_side: int = 32,
    threshold: int = 25,
    gap: int = 2,
    background: str = 'photo',
) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """Render one image.

    ``background='plain'``: a black canvas and untinted gray items (see the module docstring),
    from the same random draws as ``'photo'``.

    Returns:
        tuple: the RGB image, the background crop it was drawn on (both ``uint8``,
        ``img_size × img_size × 3``) and the objects: dicts with ``bbox`` (x1, y1, x2, y2;
        exclusive right/bottom, pixels), ``label`` and ``mask`` (bool, image-sized, the pixels
        the item covers).
    """
    import cv2

    if not 0 < min_side <= max_side <= img_size:
        raise ValueError(
            f'need 0 < min_side <= max_side <= img_size, got {min_side}, {max_side}, {img_size}.'
        )
    if background not in BACKGROUNDS:
        raise ValueError(f'background must be one of {BACKGROUNDS}, got {background!r}.')
    plain = background == 'plain'
    canvas = _random_crop(rng, backgrounds[int(rng.integers(len(backgrounds)))], img_size)
    if plain:  # the crop is drawn all the same: the layout stays the photo set's
        canvas = np.zeros_like(canvas)
    image = canvas.astype(np.float32)
    objects: List[dict] = []
    wanted = int(rng.integers(1, max_objects + 1))
    for _ in range(20 * wanted):
        if len(objects) == wanted:
            break
        idx = int(rng.integers(len(items)))
        side = int(rng.integers(min_side, max_side + 1))
        interp = cv2.INTER_AREA if side < items.shape[1] else cv2.INTER_LINEAR
        item = cv2.resize(items[idx], (side, side), interpolation=interp)
        covered = item > threshold
        if not covered.any():
            continue
        rows, cols = np.nonzero(covered.any(1))[0], np.nonzero(covered.any(0))[0]
        y0 = int(rng.integers(0, img_size - side + 1))
        x0 = int(rng.integers(0, img_size - side + 1))
        box = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
        if any(
            box[0] < o['bbox'][2] + gap
            and o['bbox'][0] < box[2] + gap
            and box[1] < o['bbox'][3] + gap
            and o['bbox'][1] < box[3] + gap
            for o in objects
        ):
            continue
        tint = _random_tint(rng)
        patch = image[y0 : y0 + side, x0 : x0 + side]
        if plain:
            patch[covered] = item[covered, None].astype(np.float32)
        else:
            shade = 0.35 + 0.65 * item.astype(np.float32) / 255.0
            patch[covered] = 255.0 * shade[covered, None] * tint
        mask = np.zeros((img_size, img_size), dtype=bool)
        mask[y0 : y0 + side, x0 : x0 + side] = covered
        objects.append(dict(bbox=box, label=int(labels[idx]), mask=mask))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), canvas, objects


def generate_split(
    out: str,
    split: str,
    num_images: int,
    items: np.ndarray,
    labels: np.ndarray,
    backgrounds: Sequence[np.ndarray],
    seed: int,
    **render_kwargs,
) -> dict:
    """Write ``num_images`` PNGs of one split under ``out/split``; returns the COCO dict."""
    import cv2
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out, split), exist_ok=True)
    images, annotations = [], []
    for image_id in tqdm(
        range(1, num_images + 1), desc=f'{split} images', unit='img', mininterval=2
    ):
        image, _, objects = render_image(rng, backgrounds, items, labels, **render_kwargs)
        file_name = f'{image_id:06d}.png'
        cv2.imwrite(osp.join(out, split, file_name), image[..., ::-1])
        images.append(
            dict(id=image_id, file_name=file_name, height=image.shape[0], width=image.shape[1])
        )
        for obj in objects:
            x1, y1, x2, y2 = obj['bbox']
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=obj['label'] + 1,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=(x2 - x1) * (y2 - y1),
                    iscrowd=0,
                )
            )
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    return dict(images=images, annotations=annotations, categories=categories)


def subset(coco: dict, fraction: float) -> dict:
    """The first ``fraction`` of the images (at least one) and their annotations."""
    n = max(1, int(round(len(coco['images']) * fraction)))
    images = coco['images'][:n]
    keep = {im['id'] for im in images}
    return dict(
        images=images,
        categories=coco['categories'],
        annotations=[a for a in coco['annotations'] if a['image_id'] in keep],
    )


def generate(
    out: str,
    num_train: int = 2000,
    num_val: int = 500,
    img_size: int = 64,
    seed: int = 0,
    src: str = None,
    **render_kwargs,
) -> Dict[str, int]:
    """Generate the whole set (skipped when ``out/meta.json`` records the same settings and
    Fashion-MNIST folder; any other recorded setting is regenerated: the annotation files name
    exactly the images of this set). ``render_kwargs`` go to :func:`render_image`
    (``background='plain'``, ``max_objects``, ...).

    Returns:
        dict: number of images per annotation file.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f'num_train and num_val must be at least 1, got {num_train} and {num_val}')
    if render_kwargs.get('background', 'photo') not in BACKGROUNDS:
        raise ValueError(
            f'background must be one of {BACKGROUNDS}, got {render_kwargs["background"]!r}.'
        )
    if render_kwargs.get('background') == 'photo':  # the default: same meta as before
        render_kwargs = {k: v for k, v in render_kwargs.items() if k != 'background'}
    src = find_fashion_mnist(src)
    meta_path = osp.join(out, 'meta.json')
    wanted = dict(
        num_train=num_train,
        num_val=num_val,
        img_size=img_size,
        seed=seed,
        render=render_kwargs,
        photos=list(SKIMAGE_PHOTOS + SKLEARN_PHOTOS),
        src=osp.abspath(src),
    )
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if {k: meta.get(k) for k in wanted} == wanted:
            return meta['counts']
    backgrounds = load_backgrounds()
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    files = {}
    # Independent streams per split: the validation set does not change with num_train.
    for split, fm_split, n, split_seed in (
        ('train', 'train', num_train, [seed, 0]),
        ('val', 'test', num_val, [seed, 1]),
    ):
        items, labels = load_fashion_mnist(fm_split, src)
        coco = generate_split(
            out,
            split,
            n,
            items,
            labels,
            backgrounds,
            seed=np.random.SeedSequence(split_seed),
            img_size=img_size,
            **render_kwargs,
        )
        files[split] = coco
        if split == 'train':
            files['train_10pct'] = subset(coco, 0.1)
    counts = {}
    for name, coco in files.items():
        with open(osp.join(out, 'annotations', f'{name}.json'), 'w') as f:
            json.dump(coco, f)
        counts[name] = len(coco['images'])
    with open(meta_path, 'w') as f:
        json.dump(dict(wanted, counts=counts), f, indent=1)
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/fmnist_det', help='output folder')
    parser.add_argument('--src', help='folder with the Fashion-MNIST IDX .gz files')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument('--img-size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--background',
        choices=BACKGROUNDS,
        default='photo',
        help='photo: crops of real photos, tinted items (default); plain: '
        'black canvases, gray items as in Fashion-MNIST, the same layout',
    )
    args = parser.parse_args(argv)
    try:
        counts = generate(
            args.out,
            args.num_train,
            args.num_val,
            args.img_size,
            args.seed,
            args.src,
            background=args.background,
        )
    except (FileNotFoundError, ValueError) as e:
        print(e, file=sys.stderr)
        return 2
    print(
        f'Fashion-MNIST detection set ({args.background} backgrounds) at {args.out}: '
        f'{counts} images'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
