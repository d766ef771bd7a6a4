"""The project's command-line tools as modules, for tests that call their ``main(argv)``, a
script run as ``__main__`` in the test's process, and a free port for tests that start torchrun.

Each tool is loaded from its file (``tools/<path>``) under a private module name; nothing is
added to ``sys.path``.
"""

import importlib.util
import os.path as osp
import runpy
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


def run_as_script(path: str, argv: list, cwd: str, monkeypatch) -> int:
    """``python <repository>/<path> ARGV`` started in ``cwd``, in this process (a new
    interpreter would import torch and the plugin again): ``sys.argv``, the working directory
    and ``sys.path`` as that interpreter has them (the script's folder first, neither the
    repository nor ``tests/``), and no ``projects`` package imported. Everything is put back
    when the test ends.

    Returns:
        int: The exit code.
    """
    script = osp.join(ROOT, path)
    hidden = {osp.realpath(ROOT), osp.realpath(TESTS)}
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, 'argv', [script, *argv])
    monkeypatch.setattr(
        sys,
        'path',
        [osp.dirname(script)] + [p for p in sys.path if p and osp.realpath(p) not in hidden],
    )
    for name in [n for n in sys.modules if n == 'projects' or n.startswith('projects.')]:
        monkeypatch.delitem(sys.modules, name)
    try:
        runpy.run_path(script, run_name='__main__')
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1 if exit_.code else 0
    return 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for torchrun's rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
