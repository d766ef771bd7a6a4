#!/usr/bin/env bash
# Is a 2-process (CPU, gloo) DDP resume bit-identical to an uninterrupted 2-process run?
#   bash tools/experiments/ddp_resume.sh DATA_ROOT [OUT_DIR]
# DATA_ROOT: Fashion-MNIST in CustomDataset folders (make demo writes data/fashion_mnist).
# Trains the demo student (random flips, Mixup, drop-path, EMA; fresh ResNet_CIFAR teacher) for
# 3 epochs straight, and for 2 epochs + --resume to 3, then compares the final checkpoints.
set -e
DATA_ROOT=$1
OUT=${2:-$(mktemp -d /tmp/ddp_resume_XXXX)}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export PYTHON=${PYTHON:-$ROOT/.venv/bin/python} OMP_NUM_THREADS=1 PORT=${PORT:-29561}
mkdir -p "$OUT"
"$PYTHON" - "$OUT" "$ROOT" <<'PY'
import sys, torch
from mmengine.config import Config
out, root = sys.argv[1:]
import deit_plugin  # noqa: F401
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
init_default_scope('mmpretrain')
cfg = Config.fromfile(f'{root}/configs/fashion_mnist/resnet_cifar_teacher.py')
teacher = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
torch.manual_seed(1)
teacher.init_weights()
torch.save({'state_dict': teacher.state_dict()}, f'{out}/teacher.pth')
open(f'{out}/student.py', 'w').write(f"""_base_ = ['{root}/configs/fashion_mnist/deit_tiny_distill.py']
model = dict(teacher_ckpt='{out}/teacher.pth', backbone=dict(drop_path_rate=0.1),
             train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8)]))
custom_hooks = [dict(type='deit_plugin.DistillationHook'),
                dict(type='EMAHook', momentum=0.1, priority='ABOVE_NORMAL'),
                dict(type='deit_plugin.RandomStateHook'), dict(type='deit_plugin.FiniteLossHook')]
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, end=3,
                        convert_to_iter_based=True)]
train_cfg = dict(max_epochs=3, val_interval=1)
train_dataloader = dict(batch_size=32, dataset=dict(indices=250))
val_dataloader = dict(dataset=dict(indices=32))
""")
PY
O="--cfg-options train_dataloader.dataset.data_root=$DATA_ROOT val_dataloader.dataset.data_root=$DATA_ROOT test_dataloader.dataset.data_root=$DATA_ROOT"
echo "3 epochs straight (2 processes)"
bash "$ROOT/tools/dist_train.sh" "$OUT/student.py" 2 --work-dir "$OUT/straight" $O > "$OUT/straight.log" 2>&1
echo "2 epochs, then --resume to 3 (2 processes)"
bash "$ROOT/tools/dist_train.sh" "$OUT/student.py" 2 --work-dir "$OUT/resumed" $O train_cfg.max_epochs=2 > "$OUT/resumed1.log" 2>&1
bash "$ROOT/tools/dist_train.sh" "$OUT/student.py" 2 --work-dir "$OUT/resumed" --resume $O > "$OUT/resumed2.log" 2>&1
"$PYTHON" - "$OUT" <<'PY'
import sys, torch
import deit_plugin  # noqa: F401
out = sys.argv[1]
for key in ('state_dict', 'ema_state_dict'):
    a = torch.load(f'{out}/straight/epoch_3.pth')[key]
    b = torch.load(f'{out}/resumed/epoch_3.pth')[key]
    same = all(torch.equal(a[k], b[k]) for k in a)
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    print(f'{key}: bit-identical={same} max|diff|={diff:.3g}')
print('ranks with random states in the checkpoint:',
      len(torch.load(f'{out}/resumed/epoch_2.pth')['random_states']['ranks']))
PY
