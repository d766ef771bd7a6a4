from .distill_classifier import DistillationClassifier
from .distill_head import DeiTDistillHead
from .distill_losses import HardDistillationLoss, SoftDistillationLoss
from .distilled_vit import DistilledVisionTransformer
from .simple_feature_pyramid import SimpleFeaturePyramid

__all__ = [
    'DistilledVisionTransformer',
    'DeiTDistillHead',
    'HardDistillationLoss',
    'SoftDistillationLoss',
    'DistillationClassifier',
    'SimpleFeaturePyramid',
]
