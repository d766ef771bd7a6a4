from .distill_metric import DistillationMetric

__all__ = ['DistillationMetric']
