"""The bad-input table: each public entry point fed malformed inputs gives one clear error that
names the problem and the fix (checked by message), never a traceback from deep inside torch.

docs/user_guides/resume_and_failures.md lists every case with its message; keep the two in step.
"""

import gzip
import os.path as osp
import re
import struct

import pytest
import torch
from mmpretrain.structures import DataSample
from model_builders import student
from reliability_utils import ROOT, STUDENT_CFG
from tool_modules import load_tool

from deit_plugin import FashionMNISTIdx
from deit_plugin.converters.deit import convert_deit_state_dict
from deit_plugin.datasets import SeededDataset, read_idx

train_tool = load_tool('train.py')

ERRORS = (ValueError, TypeError, FileNotFoundError, SyntaxError, RuntimeError)


def images(n=2, channels=3, size=(16, 16), fill=None):
    x = torch.randn(n, channels, *size)
    if fill is not None:
        x[0, 0, 0, 0] = fill
    return x


def labels(*values):
    return [DataSample().set_gt_label(v) for v in values]


_MODEL = {}


def model():
    if 'm' not in _MODEL:  # one small student+teacher for the whole table
        _MODEL['m'] = student()
    return _MODEL['m']


def head_loss(samples, n=2, teacher_classes=4):
    m = model()
    return m.head.loss(
        m.extract_feat(images(n)), samples, teacher_logits=torch.randn(n, teacher_classes)
    )


def cut_inside_model(text):
    """The config text cut right after ``model = dict(``: a file whose writing stopped."""
    return text[: text.index('model = dict(') + len('model = dict(')]


def write(tmp, name, text):
    path = tmp / name
    path.write_text(text)
    return str(path)


def truncated_idx(tmp):
    path = tmp / 'images-idx3-ubyte.gz'
    with gzip.open(path, 'wb') as f:
        f.write(struct.pack('>HBB3I', 0, 8, 3, 10, 28, 28) + bytes(28 * 28 * 3))
    return read_idx(str(path))


def another_architecture_as_teacher(tmp):
    """A ViT-style student checkpoint given as the ResNet teacher's checkpoint."""
    other = student()
    path = tmp / 'student.pth'
    torch.save(
        {
            'state_dict': {
                k: v for k, v in other.state_dict().items() if not k.startswith('teacher.')
            }
        },
        path,
    )
    m = student(teacher_ckpt=str(path))
    m.load_teacher_checkpoint()


def checkpoint_of_another_width(tmp):
    """The table's tiny student (width 16, 2 blocks) saved as a training checkpoint; the demo
    config's student is 64 wide with 4 blocks."""
    path = tmp / 'other_width.pth'
    torch.save(
        {
            'meta': {},
            'state_dict': {
                k: v for k, v in model().state_dict().items() if not k.startswith('teacher.')
            },
        },
        path,
    )
    return str(path)


def train_with_load_from_of_another_width(tmp):
    config = write(
        tmp,
        'load_other.py',
        f"_base_ = ['{STUDENT_CFG}']\nload_from = '{checkpoint_of_another_width(tmp)}'\n",
    )
    train_tool.main([config, '--work-dir', str(tmp / 'w')])


def resume_with_another_width(tmp):
    train_tool.main(
        [STUDENT_CFG, '--work-dir', str(tmp / 'w'), '--resume', checkpoint_of_another_width(tmp)]
    )


def drop_path_rate_of(rate):
    from mmpretrain.registry import MODELS

    MODELS.build(
        dict(
            type='deit_plugin.DistilledVisionTransformer',
            arch='deit-tiny',
            img_size=32,
            patch_size=16,
            drop_path_rate=rate,
        )
    )


def resume_with_soft_distillation(tmp):
    """Settings recorded by a hard-distillation run, resumed with the paper's soft ones."""
    from mmpretrain.registry import MODELS

    from deit_plugin.engine.distillation_settings import (
        check_distillation_settings,
        distillation_settings,
    )

    head = dict(type='deit_plugin.DeiTDistillHead', num_classes=4, in_channels=16)
    hard = distillation_settings(MODELS.build(head))
    soft = distillation_settings(
        MODELS.build(
            dict(
                head,
                distillation='soft',
                alpha=0.1,
                distill_loss=dict(type='deit_plugin.SoftDistillationLoss', tau=3.0),
            )
        )
    )
    check_distillation_settings(hard, soft, 'work_dirs/x/epoch_3.pth', allow=False)


def read_only_work_dir(tmp):
    """A folder without write permission; as root (which ignores permissions) sysfs, where
    nobody may create folders."""
    work_dir = tmp / 'read_only'
    work_dir.mkdir()
    work_dir.chmod(0o555)
    try:
        (work_dir / 'probe').touch()
        (work_dir / 'probe').unlink()
        work_dir = '/sys/deit_plugin_work_dir'
    except OSError:
        pass
    train_tool.main([STUDENT_CFG, '--work-dir', str(work_dir)])


def unreachable_teacher_url(tmp):
    """Nothing listens on port 9 (discard) of 127.0.0.1; torch's download cache in ``tmp``."""
    from unittest import mock

    with mock.patch.dict('os.environ', TORCH_HOME=str(tmp / 'torch_home')):
        student(teacher_ckpt='http://127.0.0.1:9/teacher.pth').load_teacher_checkpoint()


#: name -> (entry point, call(tmp_path), message pattern: the problem and the fix)
CASES = {
    # classifier forward (DistillationClassifier.loss / predict)
    'wrong_channel_count': (
        'classifier forward',
        lambda tmp: model().loss(images(channels=1), labels(0, 1)),
        r'built for 3-channel images but the batch has 1 channels .*set '
        r'backbone.in_channels=1',
    ),
    'size_not_divisible_by_patch': (
        'classifier forward',
        lambda tmp: model().loss(images(size=(18, 16)), labels(0, 1)),
        r'input size 18x16 is not a multiple of the patch size 4: resize or crop',
    ),
    'nan_pixels': (
        'classifier forward',
        lambda tmp: model().loss(images(fill=float('nan')), labels(0, 1)),
        r'non-finite pixels: 1 NaN and 0 Inf values \(first in sample 0.*check the images and '
        r'the data preprocessor',
    ),
    'inf_pixels_at_inference': (
        'classifier forward',
        lambda tmp: model().predict(images(fill=float('inf'))),
        r'non-finite pixels: 0 NaN and 1 Inf values',
    ),
    'empty_batch': (
        'classifier forward',
        lambda tmp: model().loss(images(n=0), []),
        r'got an empty batch \(shape \(0, 3, 16, 16\)\).*check the dataset',
    ),
    'not_an_image_batch': (
        'classifier forward',
        lambda tmp: model().predict(torch.randn(3, 16, 16)),
        r'expects a \(B, C, H, W\) image batch, got \(3, 16, 16\): pass images through the '
        r'data preprocessor',
    ),
    'label_out_of_range': (
        'classifier forward',
        lambda tmp: model().loss(images(), labels(4, 1)),
        r'label 4 of sample 0 is outside 0..3 \(num_classes=4\): set head.num_classes',
    ),
    'fewer_labels_than_images': (
        'classifier forward',
        lambda tmp: model().loss(images(), labels(1)),
        r'got 1 data samples for a batch of 2 images',
    ),
    # head loss (DeiTDistillHead.loss)
    'head_negative_label': (
        'head loss',
        lambda tmp: head_loss(labels(-1, 1)),
        r'DeiTDistillHead: label -1 of sample 0 is outside 0..3',
    ),
    'head_no_labels': (
        'head loss',
        lambda tmp: head_loss([]),
        r'DeiTDistillHead got no data samples \(labels\) for a batch of 2.*PackInputs',
    ),
    'head_teacher_of_other_classes': (
        'head loss',
        lambda tmp: head_loss(labels(0, 1), teacher_classes=5),
        r'distillation logits \(2, 4\) and teacher logits \(2, 5\) differ in shape',
    ),
    # teacher checkpoint
    'teacher_checkpoint_of_another_architecture': (
        'teacher checkpoint',
        another_architecture_as_teacher,
        r"does not fit the teacher.*distilled DeiT student's checkpoint.*Set "
        r'model.teacher_ckpt to a checkpoint written by training the teacher',
    ),
    'teacher_checkpoint_url_unreachable': (
        'teacher checkpoint',
        unreachable_teacher_url,
        r'could not read the teacher checkpoint http://127.0.0.1:9/teacher.pth \(URLError: '
        r'.*\): check the address and the network, or download the file',
    ),
    'teacher_checkpoint_is_a_directory': (
        'teacher checkpoint',
        lambda tmp: student(teacher_ckpt=str(tmp)).load_teacher_checkpoint(),
        r'is a directory: set model.teacher_ckpt to the checkpoint file itself',
    ),
    # converters (official/timm DeiT -> plugin)
    'converter_given_a_resnet': (
        'converter',
        lambda tmp: convert_deit_state_dict(model().teacher.state_dict()),
        r'not an official/timm DeiT checkpoint: it lacks',
    ),
    # tools/train.py config checks
    'half_written_config': (
        'tools/train.py',
        lambda tmp: train_tool.main(
            [write(tmp, 'half.py', cut_inside_model(open(STUDENT_CFG).read()))]
        ),
        r'half.py is not valid Python \(line \d+: .*\): is it complete\?',
    ),
    'config_without_training_settings': (
        'tools/train.py',
        lambda tmp: train_tool.main(
            [
                write(
                    tmp,
                    'model_only.py',
                    "model = dict(type='deit_plugin.DistillationClassifier')\n",
                ),
                '--work-dir',
                str(tmp / 'w'),
            ]
        ),
        r'model_only.py has no train_dataloader, train_cfg, optim_wrapper: training needs',
    ),
    'config_missing': (
        'tools/train.py',
        lambda tmp: train_tool.main([str(tmp / 'nope.py')]),
        r'config file .*nope.py does not exist',
    ),
    # datasets
    'indices_out_of_range': (
        'dataset',
        lambda tmp: FashionMNISTIdx(split='test', indices=[3, 10000]),
        r'indices \[10000\] are outside the test split of 10000 images',
    ),
    'unknown_split': (
        'dataset',
        lambda tmp: FashionMNISTIdx(split='val'),
        r"split must be 'train' or 'test', got 'val'",
    ),
    'truncated_idx_file': (
        'dataset',
        truncated_idx,
        r'the header says \(10, 28, 28\), the file holds 2352 values \(truncated download\?\)',
    ),
    'seeded_dataset_without_its_sampler': (
        'dataset',
        lambda tmp: SeededDataset(FashionMNISTIdx(indices=2))[0],
        r'indexed by \(index, seed\) pairs from deit_plugin.SeededSampler, got 0',
    ),
    # checkpoints given to tools/train.py, and what a resume may change
    'load_from_of_another_width': (
        'tools/train.py',
        train_with_load_from_of_another_width,
        r'load_from \S+other_width.pth does not fit the DistillationClassifier of this config.*'
        r'differ in shape \(\d+\): backbone.cls_token \(1, 1, 16\) in the checkpoint, '
        r'\(1, 1, 64\) in the model.*missing from the checkpoint.*Fix: give a checkpoint of '
        r'this model',
    ),
    'resume_of_another_width': (
        'tools/train.py',
        resume_with_another_width,
        r'--resume \S+other_width.pth does not fit .*without --resume',
    ),
    'resume_with_other_distillation': (
        'resume',
        resume_with_soft_distillation,
        r"distillation settings differ .*alpha 0.5 -> 0.1, distill_loss 'HardDistillationLoss' "
        r"-> 'SoftDistillationLoss', distillation 'hard' -> 'soft'.*--allow-distillation-change",
    ),
    'drop_path_rate_out_of_range': (
        'backbone',
        lambda tmp: drop_path_rate_of(2.0),
        r'drop_path_rate must be in \[0, 1\), got 2.0: .*Set backbone.drop_path_rate',
    ),
    'batch_size_zero': (
        'tools/train.py',
        lambda tmp: train_tool.main(
            [
                STUDENT_CFG,
                '--work-dir',
                str(tmp / 'w'),
                '--cfg-options',
                'train_dataloader.batch_size=0',
            ]
        ),
        r'train_dataloader.batch_size must be a whole number of at least 1, got 0',
    ),
    'read_only_work_dir': (
        'tools/train.py',
        read_only_work_dir,
        r'work dir \S+ cannot be written \(.*\): .*Pass --work-dir <a folder you can write>',
    ),
}


def doc_table():
    """(entry point, error) of each row of the bad-input table in the user guide, in order."""
    with open(osp.join(ROOT, 'docs/user_guides/resume_and_failures.md'), encoding='utf-8') as f:
        lines = f.read().split('## Bad inputs', 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('| entry point')) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith('|'):
            break
        cells = [c.strip() for c in line.strip().strip('|').split(' | ')]
        rows.append((cells[0].replace(' (predict)', ''), cells[-1].strip('`')))
    return rows


def doc_fragments(message):
    """The documented (shortened) message as regexes: its parts between '...', with '<path>'
    and 'line N' standing for any path and line number."""
    parts = [p.strip() for p in message.split('...') if p.strip(' :.')]
    return [
        re.escape(p).replace(re.escape('<path>'), r'\S+').replace(re.escape('line N'), r'line \d+')
        for p in parts
    ]


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_gives_one_clear_error(case, tmp_path):
    entry, make, pattern = CASES[case]
    with pytest.raises(ERRORS) as e:
        make(tmp_path)
    assert re.search(pattern, str(e.value), re.S), f'{case}: {type(e.value).__name__}: {e.value}'
    # raised by our checks, not from inside torch
    assert 'torch/' not in (e.traceback[-1].path.as_posix() if e.traceback else '')
    # the user guide's row for this case names the same entry point and quotes the message
    doc_entry, doc_message = doc_table()[list(CASES).index(case)]
    assert doc_entry == entry
    for fragment in doc_fragments(doc_message):
        assert re.search(fragment, str(e.value), re.S), (
            f'{case}: the guide quotes {fragment!r}, the error is {e.value}'
        )


def test_the_guide_lists_every_case():
    assert len(doc_table()) == len(CASES) == 28
    assert {entry for entry, _ in doc_table()} == {
        'classifier forward',
        'head loss',
        'teacher checkpoint',
        'converter',
        'tools/train.py',
        'dataset',
        'resume',
        'backbone',
    }
