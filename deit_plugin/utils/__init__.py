"""Helpers shared by the package's modules (the tools' own helpers are in ``tools/_support``)."""

from .config import load_config, model_with_data_preprocessor
from .model import unwrap_model

__all__ = ['load_config', 'model_with_data_preprocessor', 'unwrap_model']
