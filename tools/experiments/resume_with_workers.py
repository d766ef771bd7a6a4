"""Measure how exactly a resumed run continues when the data is loaded by worker processes.

    python tools/experiments/resume_with_workers.py [--data-root DIR] [--out result.json]

For ``persistent_workers`` False and True (1 dataloader worker each), trains the demo student
(random flips, Mixup, drop-path) on 125 Fashion-MNIST images for 3 epochs straight, and again
for 2 epochs, then ``--resume`` to 3; prints the largest weight difference between the two
final checkpoints. ``RandomStateHook`` restores the main process's generators; persistent
workers keep their own across epochs, which no checkpoint holds (the measured gap below).
The teacher is a freshly initialised ResNet_CIFAR: only its constancy matters here.
"""

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

import torch
from mmengine.config import Config

from deit_plugin.utils.config import model_with_data_preprocessor

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def train(argv) -> None:
    """tools/train.py with ``argv``, in a subprocess."""
    subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), *argv], check=True)


STUDENT_CFG = osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py')
TEACHER_CFG = osp.join(ROOT, 'configs/fashion_mnist/resnet_cifar_teacher.py')


def save_teacher(path: str) -> str:
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(TEACHER_CFG)
    teacher = MODELS.build(model_with_data_preprocessor(cfg))
    torch.manual_seed(1)
    teacher.init_weights()
    torch.save({'state_dict': teacher.state_dict()}, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--data-root',
        default=osp.join(ROOT, 'data/fashion_mnist'),
        help='CustomDataset folders (tools/dataset_converters/...)',
    )
    parser.add_argument('--out', default=None, help='write the result as JSON here')
    args = parser.parse_args()
    n_train = len(glob.glob(osp.join(args.data_root, 'train', '*', '*.png')))
    n_test = len(glob.glob(osp.join(args.data_root, 'test', '*', '*.png')))
    if not n_train:
        raise SystemExit(
            f'no images in {args.data_root}/train: run `make demo` (it converts '
            f'Fashion-MNIST there) or pass --data-root.'
        )
    tmp = tempfile.mkdtemp(prefix='resume_workers_')
    teacher = save_teacher(osp.join(tmp, 'teacher.pth'))
    config = osp.join(tmp, 'student.py')
    with open(config, 'w') as f:
        f.write(f"""_base_ = ['{STUDENT_CFG}']
model = dict(teacher_ckpt='{teacher}', backbone=dict(drop_path_rate=0.1),
             train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8)]))
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, end=3,
                        convert_to_iter_based=True)]
train_cfg = dict(max_epochs=3, val_interval=3)
log_level = 'WARNING'
train_dataloader = dict(batch_size=32, num_workers=1,
                        dataset=dict(indices=list(range(0, {n_train}, {n_train // 125}))[:125]))
val_dataloader = dict(dataset=dict(indices=list(range(0, {n_test}, {max(n_test // 125, 1)}))))
""")
    result = {}
    for persistent in (False, True):
        opts = ['--cfg-options', f'train_dataloader.persistent_workers={persistent}'] + [
            f'{loader}.dataset.data_root={args.data_root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        ]
        ref, res = (osp.join(tmp, f'persistent{int(persistent)}_{n}') for n in ('ref', 'res'))
        print(f'persistent_workers={persistent}: 3 epochs straight', flush=True)
        train([config, '--work-dir', ref, *opts])
        time.sleep(1.1)  # mmengine names runs by the second
        print(f'persistent_workers={persistent}: 2 epochs, then --resume to 3', flush=True)
        train([config, '--work-dir', res, *opts, 'train_cfg.max_epochs=2'])
        time.sleep(1.1)
        train([config, '--work-dir', res, '--resume', *opts])
        time.sleep(1.1)
        a = torch.load(osp.join(ref, 'epoch_3.pth'))['state_dict']
        b = torch.load(osp.join(res, 'epoch_3.pth'))['state_dict']
        result[f'persistent_workers={persistent}'] = dict(
            max_abs_diff=max((a[k].float() - b[k].float()).abs().max().item() for k in a),
            max_rel_l2=max(
                ((a[k].float() - b[k].float()).norm() / a[k].float().norm().clamp_min(1e-12)).item()
                for k in a
            ),
            bit_identical=all(torch.equal(a[k], b[k]) for k in a),
        )
    print(json.dumps(result, indent=1))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
