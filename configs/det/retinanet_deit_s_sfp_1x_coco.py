# RetinaNet with a DeiT-S⚗ backbone (patch 16, one stride-16 map) and
# deit_plugin.SimpleFeaturePyramid (ViTDet's neck) on COCO, mmdet's 1x schedule.
#
# Backbone weights: a deit_plugin DeiT-S⚗ classifier checkpoint (configs/deit_s_distill.py, or
# the official deit_small_distilled_patch16_224 converted with
# tools/model_converters/deit_to_plugin.py), exported without head and teacher:
#   python tools/model_converters/export_backbone.py CLASSIFIER.pth \
#       checkpoints/deit_s_distill_backbone.pth
# COCO in data/coco/ (mmdet's layout: annotations/instances_{train,val}2017.json,
# train2017/, val2017/).
#
# Choices (ViTDet, Li et al. 2022, §4 and its detectron2 configs; adapted to mmdet's 1x):
# AdamW lr 1e-4, weight decay 0.1 (none on norms, biases, tokens, pos_embed), layer-wise lr
# decay 0.7 with the distillation token at the stem's depth
# (deit_plugin.DeiTLayerDecayOptimWrapperConstructor), drop-path 0.1. Global attention in every
# block; ViTDet's windowed attention: retinanet_deit_s_win_sfp_1x_coco.py. RetinaNet
# uses pyramid levels P3-P7, so the neck builds strides 8, 16, 32 from the stride-16 map
# (scale factors 2, 1, 0.5) and two stride-2 subsamplings for 64 and 128. The position
# embeddings stay on the checkpoint's 14x14 grid (img_size=224) and are resized bicubically to
# every padded input at run time.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
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
        scale_factors=(2.0, 1.0, 0.5),
        num_outs=5,
    ),
)
