"""The main job (``make demo``): hard distillation on real data, end to end, with stock tools.

1. Fashion-MNIST IDX files -> mmpretrain CustomDataset folders
   (tools/dataset_converters/fashion_mnist_to_custom.py).
2. ``tools/train.py`` the teacher (configs/fashion_mnist/resnet_cifar_teacher.py).
3. ``tools/train.py`` the DeiT student with hard distillation from the teacher's saved checkpoint
   (configs/fashion_mnist/deit_tiny_distill.py).
4. ``tools/test.py`` both on the full 10k test set and print one table: teacher top-1, student
   top-1 of the class head, the distillation head and the fused prediction, and the
   teacher-student agreement. The table is also written to WORK_DIR/results.md and .json.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TEACHER_CFG = 'configs/fashion_mnist/resnet_cifar_teacher.py'
STUDENT_CFG = 'configs/fashion_mnist/deit_tiny_distill.py'
FLOORS = dict(teacher=88.0, fused=85.0, minutes=12.0)


def run(cmd, what, log=None):
    """Runs ``cmd`` from the project root and returns its wall time; its output goes to the
    console or, with ``log`` (a path under the root), to that file."""
    print(f'\n=== {what}\n$ {" ".join(cmd)}' + (f'\n    (output: {log})' if log else ''),
          flush=True)
    start = time.time()
    if log:
        os.makedirs(osp.dirname(osp.join(ROOT, log)), exist_ok=True)
        with open(osp.join(ROOT, log), 'w') as f:
            result = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    else:
        result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        where = f'see {log}' if log else 'see the output above'
        raise SystemExit(f'{what} failed (exit {result.returncode}); {where}.')
    return time.time() - start


def last_checkpoint(work_dir):
    with open(osp.join(ROOT, work_dir, 'last_checkpoint')) as f:
        return osp.relpath(f.read().strip(), ROOT)


def plot_student_curves(work_dir, out_png):
    """Training curves of the student (loss_cls, loss_dist, agreement) from mmengine's
    scalars.json, one point per logged iteration."""
    import glob

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    with open(runs[-1]) as f:
        log = [json.loads(line) for line in f]
    train = [e for e in log if 'loss_dist' in e]
    iters = [e['iter'] for e in train]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot(iters, [e['loss_cls'] for e in train], label='loss_cls = (1-a) * class loss')
    ax[0].plot(iters, [e['loss_dist'] for e in train], label='loss_dist = a * hard distillation')
    ax[0].set_xlabel('iteration')
    ax[0].set_ylabel('weighted loss')
    ax[0].legend()
    ax[1].plot(iters, [100 * e['agreement'] for e in train], color='tab:green')
    ax[1].set_xlabel('iteration')
    ax[1].set_ylabel('teacher-student agreement on the batch (%)')
    fig.suptitle('DeiT student, hard distillation from ResNet_CIFAR (Fashion-MNIST)')
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data', default='data/fashion_mnist')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    args = parser.parse_args(argv)

    py = sys.executable
    extra = ['--threads', str(args.threads)] if args.threads else []
    data_opt = [f'train_dataloader.dataset.data_root={args.data}',
                f'val_dataloader.dataset.data_root={args.data}',
                f'test_dataloader.dataset.data_root={args.data}']
    t0 = time.time()
    times = {}
    times['data'] = run([py, 'tools/dataset_converters/fashion_mnist_to_custom.py', '--out',
                         args.data], 'Fashion-MNIST -> CustomDataset layout')
    t_dir, s_dir = osp.join(args.work_dir, 'teacher'), osp.join(args.work_dir, 'student')
    times['teacher_train'] = run(
        [py, 'tools/train.py', TEACHER_CFG, '--work-dir', t_dir, *extra, '--cfg-options',
         *data_opt], 'train the teacher (ResNet_CIFAR)')
    teacher_ckpt = last_checkpoint(t_dir)
    times['student_train'] = run(
        [py, 'tools/train.py', STUDENT_CFG, '--work-dir', s_dir, *extra, '--cfg-options',
         *data_opt, f'model.teacher_ckpt={teacher_ckpt}'],
        'train the DeiT student with hard distillation')
    student_ckpt = last_checkpoint(s_dir)
    t_json, s_json = osp.join(args.work_dir, 'teacher_test.json'), osp.join(
        args.work_dir, 'student_test.json')
    times['teacher_test'] = run(
        [py, 'tools/test.py', TEACHER_CFG, teacher_ckpt, '--work-dir', t_dir, '--metrics-json',
         t_json, *extra, '--cfg-options', *data_opt], 'evaluate the teacher (10k test images)')
    times['student_test'] = run(
        [py, 'tools/test.py', STUDENT_CFG, student_ckpt, '--work-dir', s_dir, '--metrics-json',
         s_json, *extra, '--cfg-options', *data_opt, f'model.teacher_ckpt={teacher_ckpt}'],
        'evaluate the student (10k test images)')
    minutes = (time.time() - t0) / 60

    with open(osp.join(ROOT, t_json)) as f:
        teacher = json.load(f)
    with open(osp.join(ROOT, s_json)) as f:
        student = json.load(f)
    rows = [
        ('teacher (ResNet_CIFAR-18) top-1', teacher['accuracy/top1'], FLOORS['teacher']),
        ('student class head top-1', student['distill/cls_top1'], None),
        ('student distillation head top-1', student['distill/dist_top1'], None),
        ('student fused (mean) top-1', student['distill/fused_top1'], FLOORS['fused']),
        ('teacher-student agreement (fused)', student['distill/agreement'], None),
    ]
    lines = ['| Fashion-MNIST test (10,000 images) | % | floor |', '|---|---:|---:|']
    for name, value, floor in rows:
        mark = '' if floor is None else (f'>= {floor:.0f} ' + ('ok' if value >= floor
                                                                else 'NOT MET'))
        lines.append(f'| {name} | {value:.2f} | {mark} |')
    lines.append(f'| whole demo (minutes, after setup) | {minutes:.1f} | <= '
                 f'{FLOORS["minutes"]:.0f} {"ok" if minutes <= FLOORS["minutes"] else "NOT MET"} |')
    table = '\n'.join(lines)
    print('\n' + table)
    print('\nstep times (s): ' + ', '.join(f'{k} {v:.0f}' for k, v in times.items()))
    os.makedirs(osp.join(ROOT, args.work_dir), exist_ok=True)
    with open(osp.join(ROOT, args.work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    curves = osp.join(ROOT, args.work_dir, 'student_curves.png')
    plot_student_curves(osp.join(ROOT, s_dir), curves)
    print(f'training curves: {osp.relpath(curves, ROOT)}')
    with open(osp.join(ROOT, args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(teacher=teacher, student=student, minutes=minutes, step_seconds=times),
                  f, indent=1)


if __name__ == '__main__':
    main()
