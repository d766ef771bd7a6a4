"""The project's command-line tools as modules, for tests that call their ``main(argv)``, and a
free port for tests that start torchrun.

Each tool is loaded from its file (``tools/<path>``) under a private module name; nothing is
added to ``sys.path``.
"""
import importlib.util
import os.path as osp
import socket
import sys
from types import ModuleType

TESTS = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(TESTS)


def load_tool(path: str) -> ModuleType:
    """The module of ``tools/<path>`` (e.g. ``'train.py'``, ``'analysis/agreement.py'``)."""
    return load_script(osp.join('tools', path))


def load_script(path: str) -> ModuleType:
    """The module of the script at ``<repository>/<path>`` (e.g. ``'demo/image_demo.py'``)."""
    name = 'deit_plugin_script_' + path[:-3].replace('/', '_')
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for torchrun's rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
