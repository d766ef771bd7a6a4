"""Layer-wise learning-rate decay for a DeiT backbone inside any model (classifier or detector)."""

from typing import Callable, List, Optional, Tuple

import torch.nn as nn
from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor

from deit_plugin.models.teacher_slot import without_teacher
from deit_plugin.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DeiTLayerDecayOptimWrapperConstructor(LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's layer-decay constructor, usable for detectors, with DeiT's token depths.

    A parameter at depth ``d`` of ``L`` (``L = num_layers + 2``) gets
    ``lr = base_lr · layer_decay_rate ** (L - 1 - d)`` (BEiT/MAE/ViTDet fine-tuning). The depth
    comes from the backbone's ``get_layer_depth``: the stem (patch embedding, position
    embedding, class token **and distillation token**) is depth 0, block ``i`` depth ``i + 1``,
    everything else — the final norm, the neck, the heads — depth ``L - 1`` (full lr).

    What mmpretrain 1.2.0's ``LearningRateDecayOptimWrapperConstructor`` does differently:

    - it takes the depth from ``model.get_layer_depth``, which mmpretrain's classifiers have
      and mmdet's detectors do not, so it raises ``NotImplementedError`` for a detector. Here a
      model without the method uses ``model.backbone.get_layer_depth`` (prefix ``backbone.``);
    - with mmpretrain's own ``DistilledVisionTransformer`` it puts ``dist_token`` at the last
      depth (full lr: ``VisionTransformer.get_layer_depth`` only knows
      ``cls_token`` and ``pos_embed``).
      ``deit_plugin.DistilledVisionTransformer.get_layer_depth`` puts it at depth 0 with the
      class token, and this constructor refuses a backbone that would still place
      ``dist_token`` elsewhere.

    ``paramwise_cfg`` is mmpretrain's: ``layer_decay_rate``, ``norm_decay_mult``,
    ``bias_decay_mult``, ``flat_decay_mult``, ``custom_keys`` (``decay_mult`` only). The teacher
    of a ``DistillationClassifier`` is never put into the optimizer.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        if self.base_wd is None:
            # Upstream bug: without optimizer.weight_decay, mmpretrain 1.2.0's add_params fails
            # with KeyError: 'weight_decay' when it logs the parameter groups.
            raise ValueError(
                f'{type(self).__name__} needs optimizer.weight_decay set explicitly (e.g. '
                "optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05)); mmpretrain's "
                'layer-decay code fails without it.'
            )

    def __call__(self, model: nn.Module):
        return super().__call__(without_teacher(model))

    @staticmethod
    def _depth_fn(model: nn.Module) -> Callable[[str], Tuple[int, int]]:
        """The ``name -> (depth, num_depths)`` function of ``model``'s DeiT backbone."""
        backbone = getattr(model, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'get_layer_depth'):
            if hasattr(model, 'get_layer_depth'):
                return model.get_layer_depth
            raise TypeError(
                f'{type(model).__name__} has no get_layer_depth and no backbone with one: '
                'layer-wise lr decay needs a ViT backbone (e.g. '
                "type='deit_plugin.DistilledVisionTransformer'); use mmengine's "
                'DefaultOptimWrapperConstructor for other models.'
            )
        if hasattr(backbone, 'dist_token'):
            depth, _ = backbone.get_layer_depth('backbone.dist_token', 'backbone.')
            if depth != 0:
                raise TypeError(
                    f'{type(backbone).__module__}.{type(backbone).__name__} puts dist_token at '
                    f'depth {depth} instead of the stem (0): use '
                    "type='deit_plugin.DistilledVisionTransformer' as the backbone."
                )

        def get_layer_depth(param_name: str, prefix: str = '') -> Tuple[int, int]:
            return backbone.get_layer_depth(param_name, prefix + 'backbone.')

        return get_layer_depth

    def add_params(
        self,
        params: List[dict],
        module: nn.Module,
        prefix: str = '',
        get_layer_depth: Optional[Callable] = None,
        **kwargs,
    ) -> None:
        """Add ``module``'s parameters with their layer-decayed lr (see the class docstring)."""
        if prefix == '' and get_layer_depth is None:
            get_layer_depth = self._depth_fn(module)
        super().add_params(params, module, prefix=prefix, get_layer_depth=get_layer_depth, **kwargs)
