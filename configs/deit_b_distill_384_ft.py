# DeiT-B⚗↑384: fine-tune the distilled DeiT-B from 224 to 384 px *while distilling* (the RegNetY
# teacher sees the same 384 batch), something the official code refuses (main.py raises
# NotImplementedError for --finetune with a teacher). Published (1000-epoch, fine-tuned): 85.2%.
#
# Start from the official 224 checkpoint, converted:
#   python tools/model_converters/deit_to_plugin.py \
#       checkpoints/deit_base_distilled_patch16_224-df68dfff.pth \
#       checkpoints/deit_base_distilled_patch16_224_plugin.pth
# Loading it into this 384 model resizes the position embeddings bicubically (both extra tokens
# kept), as the official fine-tuning code does.
#   bash tools/dist_train.sh configs/deit_b_distill_384_ft.py 8
_base_ = './deit_b_distill.py'

load_from = 'checkpoints/deit_base_distilled_patch16_224_plugin.pth'
img_size = 384
model = dict(backbone=dict(img_size=img_size))

# ImageNet pipelines at 384; eval resize 384/0.875 = 438 (the official eval crop ratio).
bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic'),
    ),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std,
    ),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=int(img_size / 0.875),
        edge='short',
        backend='pillow',
        interpolation='bicubic',
    ),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
# 8 GPUs x 32 images (384 px DeiT-B + RegNetY-16GF do not fit 128 per GPU).
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# The paper's fine-tuning schedule: lr 5e-6 * batch / 512, weight decay 1e-8, 30 epochs.
# The official command sets --min-lr equal to --lr, so after the 5 warmup epochs (from 1e-6,
# main.py's default) the rate stays constant.
base_lr = 5e-6 * 256 / 512
optim_wrapper = dict(optimizer=dict(lr=base_lr, weight_decay=1e-8))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6 / base_lr,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)
auto_scale_lr = dict(base_batch_size=256)
