# The paper's teacher: RegNetY-16GF (82.9% ImageNet top-1), as distributed with DeiT
# (regnety_160-a5fe301d.pth, timm key names). Built through mmpretrain's TimmClassifier, which
# loads timm state dicts as they are. Inputs: ImageNet mean/std, RGB (timm's defaults).
model = dict(
    type='mmpretrain.TimmClassifier',
    model_name='regnety_160',
    pretrained=False,
    num_classes=1000,
    data_preprocessor=dict(
        num_classes=1000, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
    ),
)
