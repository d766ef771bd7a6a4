# retinanet_deit_s_sfp_1x_coco.py with ViTDet's windowed attention (Li et al. 2022, §3): 14x14
# windows in every block but 2, 5, 8 and 11, which keep global attention over all patch tokens;
# the class and distillation tokens are dropped before block 0. The parameters are those of the
# global model, so the same exported classification backbone loads (strictly); no relative
# position bias (a DeiT checkpoint has none). Padded inputs (mmdet pads to 32) whose token grid
# is not a multiple of 14 are padded further, inside each windowed block, as ViTDet does.
_base_ = ['./retinanet_deit_s_sfp_1x_coco.py']

model = dict(backbone=dict(window_size=14, global_attn_indexes=(2, 5, 8, 11)))
