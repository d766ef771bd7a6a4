# DeiT-Ti⚗ on ImageNet-1k, the recipe of deit_s_distill.py. Published: 74.5% top-1.
_base_ = './deit_s_distill.py'
model = dict(
    backbone=dict(arch='deit-tiny'),
    head=dict(in_channels=192),
)
