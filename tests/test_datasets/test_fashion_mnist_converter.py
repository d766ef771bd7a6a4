import gzip
import os.path as osp

import cv2
import numpy as np
import pytest
from tool_modules import load_tool

conv = load_tool('dataset_converters/fashion_mnist_to_custom.py')


def test_real_idx_files_have_the_documented_shapes_and_labels():
    src = conv.find_source()
    images, labels = conv.load_split(src, 'test')
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10  # the test split is balanced


def test_pngs_hold_the_idx_pixels_in_label_ordered_folders(fmnist_root):
    images, labels = conv.load_split(conv.find_source(), 'train')
    folders = conv.class_folders()
    assert sorted(folders) == folders  # CustomDataset labels = sorted folder order
    for i in (0, 1, 1999):
        png = cv2.imread(
            osp.join(fmnist_root, 'train', folders[labels[i]], f'{i:05d}.png'), cv2.IMREAD_UNCHANGED
        )
        np.testing.assert_array_equal(png, images[i])


def test_truncated_idx_file_is_reported(tmp_path):
    src = osp.join(conv.find_source(), 't10k-labels-idx1-ubyte.gz')
    with gzip.open(src, 'rb') as f:
        raw = f.read()
    bad = tmp_path / 'labels.gz'
    with gzip.open(bad, 'wb') as f:
        f.write(raw[:-100])
    with pytest.raises(ValueError, match='truncated'):
        conv.read_idx(str(bad))


def _pngs(root):
    import glob

    return sorted(glob.glob(osp.join(root, '*', '*', '*.png')))


def test_a_folder_of_other_settings_or_another_tool_is_refused(tmp_path, capsys):
    src = conv.find_source()
    out = str(tmp_path / 'fm')
    assert conv.convert(src, out, limit=12) == dict(train=12, test=12)
    assert len(_pngs(out)) == 24
    # same settings: nothing rewritten, the recorded counts come back
    assert conv.convert(src, out, limit=12) == dict(train=12, test=12)
    # another limit would leave 12 stale PNGs beside the new ones: refused, nothing written
    with pytest.raises(FileExistsError, match=r'limit=12 \(asked 5\).*another --out'):
        conv.convert(src, out, limit=5)
    assert len(_pngs(out)) == 24
    assert conv.main(['--src', src, '--out', out, '--limit', '5']) == 2
    assert 'other settings' in capsys.readouterr().err
    # split folders without meta.json were not written by the tool
    foreign = tmp_path / 'foreign'
    (foreign / 'train' / 'cats').mkdir(parents=True)
    (foreign / 'train' / 'cats' / 'a.png').write_bytes(b'')
    with pytest.raises(FileExistsError, match='did not write'):
        conv.convert(src, str(foreign), limit=5)


def test_an_interrupted_conversion_is_written_again(tmp_path):
    import json

    src = conv.find_source()
    out = str(tmp_path / 'fm')
    conv.convert(src, out, limit=6)
    meta = osp.join(out, 'meta.json')
    with open(meta) as f:
        recorded = json.load(f)
    with open(meta, 'w') as f:  # what an interrupted run leaves: settings but no counts
        json.dump(dict(recorded, counts=None), f)
    png = _pngs(out)[0]
    with open(png, 'wb') as f:
        f.write(b'broken')
    assert conv.convert(src, out, limit=6) == dict(train=6, test=6)
    assert cv2.imread(png, cv2.IMREAD_UNCHANGED).shape == (28, 28)


def test_a_negative_limit_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        conv.main(['--out', str(tmp_path / 'x'), '--limit', '-1'])
    assert e.value.code == 2
    assert '--limit must be 0' in capsys.readouterr().err
    with pytest.raises(ValueError, match='limit must be 0'):
        conv.convert(conv.find_source(), str(tmp_path / 'y'), limit=-3)
