"""Inference with a trained deit_plugin student (mmpretrain's ``apis`` interface)."""

from .inference import DistilledInferencer, inference_model, init_student, student_config

__all__ = ['DistilledInferencer', 'inference_model', 'init_student', 'student_config']
