# Mask R-CNN with a DeiT-S⚗ backbone and deit_plugin.SimpleFeaturePyramid (ViTDet's neck: strides
# 4, 8, 16, 32 from the stride-16 map, plus 64 for the RPN) on COCO, mmdet's 1x schedule.
#
# Backbone weights: export a deit_plugin DeiT-S⚗ classifier checkpoint first (see
# retinanet_deit_s_sfp_1x_coco.py):
#   python tools/model_converters/export_backbone.py CLASSIFIER.pth \
#       checkpoints/deit_s_distill_backbone.pth
# COCO in data/coco/ (mmdet's layout).
#
# Optimisation: ../_base_/schedules/coco_1x_adamw_layer_decay.py (ViTDet: AdamW 1e-4, wd 0.1,
# layer decay 0.7 with dist_token at the stem), drop-path 0.1. Global attention in every block;
# ViTDet's windowed attention: mask_rcnn_deit_s_win_sfp_1x_coco.py. Not reproduced from ViTDet:
# the normalised convolutions in the RPN/RoI heads, large-scale jitter and the 100-epoch
# schedule.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    '../_base_/schedules/coco_1x_adamw_layer_decay.py',
    '../_base_/det_runtime.py',
]
custom_imports = dict(imports=['deit_plugin'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/deit_s_distill_backbone.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        _scope_='deit_plugin',
        type='DistilledVisionTransformer',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        out_type='featmap',
        out_indices=(11,),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint, prefix='backbone.'),
    ),
    neck=dict(
        _delete_=True,
        type='deit_plugin.SimpleFeaturePyramid',
        in_channels=384,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5,
    ),
)
