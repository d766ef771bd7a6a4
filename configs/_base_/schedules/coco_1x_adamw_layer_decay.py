# mmdet's 1x schedule (12 epochs, steps at 8 and 11, linear warmup) with ViTDet's optimisation
# for a plain ViT backbone (Li et al. 2022): AdamW lr 1e-4, weight decay 0.1 (none on norms,
# biases, tokens and pos_embed), layer-wise lr decay 0.7 with the distillation token at the
# stem's depth (deit_plugin.DeiTLayerDecayOptimWrapperConstructor).
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='deit_plugin.DeiTLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(
        layer_decay_rate=0.7,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.dist_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
        },
    ),
)
