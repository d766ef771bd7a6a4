# DeiT-B⚗ on ImageNet-1k, the recipe of deit_s_distill.py. Published: 83.4% top-1.
_base_ = './deit_s_distill.py'
model = dict(
    backbone=dict(arch='deit-base'),
    head=dict(in_channels=768),
)
