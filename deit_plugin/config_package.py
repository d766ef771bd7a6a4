"""``deit_plugin::<dir>/<file>.py`` config names, as ``mmpretrain::`` ones work after pip install.

mmengine 0.10.7 resolves ``pkg::dir/file.py`` (in ``_base_`` lists and
``mmengine.hub.get_config``) only for the packages named in its fixed
``mmengine.config.utils.MODULE2PACKAGE`` table, and reads the files from the installed package's
``.mim/configs`` folder (``.mim/model-index.yml`` must exist too). The wheel ships the project's
``configs/`` there (``deit_plugin/.mim`` holds links to them in the source tree); importing
``deit_plugin`` adds the package to the table. A config that inherits ``deit_plugin::`` bases
therefore needs ``deit_plugin`` imported before it is parsed -- ``custom_imports`` come too late,
they are read from the parsed config.
"""

import os.path as osp

SCOPE = 'deit_plugin'
# What mmengine receives as the "pip package" of the scope. mmengine asks pkg_resources for a
# distribution of that name and, failing that, takes the folder of ``find_spec(name).origin``.
# For an editable install the distribution's location is site-packages, which does not hold
# the package, so the name ``deit_plugin`` would send mmengine to a folder that does not exist.
# This module's name is no distribution: mmengine lands on the folder of the deit_plugin that
# is imported (installed, editable or on PYTHONPATH), whose .mim holds the configs.
LOCATOR = __name__
CONFIG_DIR = osp.join(osp.dirname(osp.abspath(__file__)), '.mim', 'configs')


def register_config_package() -> None:
    """Let mmengine resolve ``deit_plugin::<dir>/<file>.py``: adds the scope ``deit_plugin`` to
    mmengine's ``MODULE2PACKAGE`` (the one dict that ``mmengine.config``, ``mmengine.hub``,
    ``mmengine.registry`` and ``mmengine.infer`` read). Idempotent."""
    from mmengine.config import utils as config_utils

    config_utils.MODULE2PACKAGE.setdefault(SCOPE, LOCATOR)


def config_path(name: str) -> str:
    """Absolute path of a packaged config: ``config_path('fashion_mnist/deit_tiny_distill.py')``
    is the file that ``deit_plugin::fashion_mnist/deit_tiny_distill.py`` names."""
    path = osp.join(CONFIG_DIR, name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'deit_plugin has no config {name!r} (looked in {CONFIG_DIR}). Packaged configs are '
            f'named by their path under configs/, e.g. fashion_mnist/deit_tiny_distill.py.'
        )
    return path
