"""Helpers of the tools, the experiment drivers (``projects/``) and the tests, kept out of the
installed ``deit_plugin`` package.

A tool run as ``python tools/<tool>.py`` puts the repository root at the front of ``sys.path``
before importing from here (its first lines); ``python -m projects.<name>`` runs from the root
and pytest adds it (``pythonpath`` in setup.cfg). So ``tools._support`` and ``projects`` are
always imported from the tool's own checkout.
"""

import importlib
import os.path as osp
import sys
from types import ModuleType

#: The repository root (the directory holding ``tools/`` and ``projects/``).
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def import_project(module: str) -> ModuleType:
    """Import ``projects.<module>`` (e.g. ``'benchmark.__main__'``) from this checkout.

    Raises:
        ImportError: a ``projects`` package of another checkout is imported already.
    """
    init = osp.join(ROOT, 'projects', '__init__.py')
    package = sys.modules.get('projects')
    if package is not None and (
        osp.realpath(getattr(package, '__file__', None) or '') != osp.realpath(init)
    ):
        raise ImportError(
            f"a 'projects' package from {getattr(package, '__file__', None)} is "
            f'imported already, not {init}: run the tool from its own checkout '
            f'(or python -m projects.{module.split(".")[0]} in {ROOT}).'
        )
    return importlib.import_module(f'projects.{module}')
