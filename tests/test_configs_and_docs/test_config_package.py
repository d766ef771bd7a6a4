"""`deit_plugin::<dir>/<file>.py` configs: importing deit_plugin registers the package with
mmengine, and after a real (non-editable) install the configs resolve from the installed
package's .mim folder, from a directory outside the checkout."""

import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import pytest
from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE
from tool_modules import ROOT

import deit_plugin
from deit_plugin.config_package import config_path, register_config_package

NAME = 'deit_plugin::fashion_mnist/deit_tiny_distill.py'


def test_import_registers_the_package_with_mmengine():
    assert MODULE2PACKAGE.get('deit_plugin') == 'deit_plugin.config_package'
    saved = MODULE2PACKAGE.pop('deit_plugin')
    try:
        register_config_package()
        assert MODULE2PACKAGE['deit_plugin'] == 'deit_plugin.config_package'
        before = dict(MODULE2PACKAGE)
        register_config_package()  # idempotent
        assert MODULE2PACKAGE == before
    finally:
        MODULE2PACKAGE['deit_plugin'] = saved


def test_configs_resolve_from_the_imported_package(tmp_path):
    """In the checkout (editable install or PYTHONPATH): the names resolve to the configs of
    the deit_plugin that is imported."""
    from mmengine.hub import get_config

    user = tmp_path / 'my_student.py'
    user.write_text(f"_base_ = ['{NAME}']\ntrain_cfg = dict(max_epochs=1)\n")
    cfg = Config.fromfile(str(user))
    assert cfg.model.type == 'deit_plugin.DistillationClassifier'
    assert cfg.train_cfg.max_epochs == 1
    teacher_dir = osp.join(
        osp.dirname(osp.abspath(deit_plugin.__file__)), '.mim', 'configs', 'fashion_mnist'
    )
    assert cfg.model.teacher == osp.join(teacher_dir, 'resnet_cifar_teacher.py')
    assert get_config(NAME).train_cfg.max_epochs == 3


def test_packaged_config_folder_holds_the_project_configs():
    packaged = config_path('fashion_mnist/deit_tiny_distill.py')
    package_dir = osp.dirname(osp.abspath(deit_plugin.__file__))
    assert packaged == osp.join(
        package_dir, '.mim', 'configs', 'fashion_mnist', 'deit_tiny_distill.py'
    )
    source = osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py')
    if osp.realpath(package_dir) == osp.realpath(osp.join(ROOT, 'deit_plugin')):
        # the checkout's .mim/configs links to the project's configs/
        assert osp.realpath(packaged) == osp.realpath(source)
    else:  # an installed wheel holds a copy
        with open(packaged) as f, open(source) as g:
            assert f.read() == g.read()
    assert Config.fromfile(packaged).train_cfg.max_epochs == 3
    with pytest.raises(FileNotFoundError, match='fashion_mnist/deit_tiny_distill.py'):
        config_path('deit_tiny_distill.py')


def test_every_metafile_config_exists_and_parses():
    import yaml

    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    models = []
    for meta in index['Import']:
        with open(osp.join(ROOT, meta)) as f:
            models += yaml.safe_load(f)['Models']
    assert len(models) == 4
    for model in models:
        cfg = Config.fromfile(osp.join(ROOT, model['Config']))
        assert cfg.model.type == 'deit_plugin.DistillationClassifier'
        assert model['Results'][0]['Task'] == 'Image Classification'
        assert model['Converted From']['Weights'].startswith('https://dl.fbaipublicfiles.com/deit/')
    top1 = {m['Config']: m['Results'][0]['Metrics']['Top 1 Accuracy'] for m in models}
    assert top1 == {
        'configs/deit_ti_distill.py': 74.5,
        'configs/deit_s_distill.py': 81.2,
        'configs/deit_b_distill.py': 83.4,
        'configs/deit_b_distill_384_ft.py': 85.2,
    }


USER_SCRIPT = textwrap.dedent("""
    import json, sys
    import deit_plugin  # first: registers deit_plugin:: with mmengine
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile('my_student.py')
    hub = get_config('{name}')
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    print(json.dumps(dict(
        plugin=deit_plugin.__file__, type=cfg.model.type, teacher=cfg.model.teacher,
        max_epochs=cfg.train_cfg.max_epochs, hub_max_epochs=hub.train_cfg.max_epochs,
        hub_teacher=hub.model.teacher, model=type(model).__module__ + '.' + type(model).__name__,
        teacher_model=type(model.teacher).__name__)))
""")


@pytest.mark.slow
def test_configs_resolve_after_pip_install_outside_the_checkout(tmp_path):
    # build from a copy: pip builds in the source tree (build/, *.egg-info)
    src = tmp_path / 'src'
    shutil.copytree(
        ROOT,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            '.git',
            'data',
            'work_dirs',
            'build',
            '*.egg-info',
            '__pycache__',
            '.venv',
            'checkpoints',
            '.pytest_cache',
        ),
    )
    target = tmp_path / 'site'
    subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            'install',
            '--no-deps',
            '--no-build-isolation',
            '--quiet',
            '--target',
            str(target),
            str(src),
        ],
        check=True,
        cwd=str(tmp_path),
    )
    installed = target / 'deit_plugin' / '.mim'
    packaged = installed / 'configs' / 'fashion_mnist' / 'deit_tiny_distill.py'
    assert packaged.is_file() and not packaged.is_symlink()
    assert (installed / 'model-index.yml').is_file()
    assert (installed / 'configs' / 'metafile.yml').is_file()
    # the tools' helpers and the experiment drivers stay in the checkout
    assert not (target / 'tools').exists() and not (target / 'projects').exists()

    user = tmp_path / 'user_project'
    user.mkdir()
    (user / 'my_student.py').write_text(f"_base_ = ['{NAME}']\ntrain_cfg = dict(max_epochs=1)\n")
    (user / 'run.py').write_text(USER_SCRIPT.format(name=NAME))
    env = dict(os.environ, PYTHONPATH=str(target), OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, 'run.py'],
        cwd=str(user),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['plugin'].startswith(str(target))  # the installed copy, not the checkout
    assert out['type'] == 'deit_plugin.DistillationClassifier'
    assert out['max_epochs'] == 1 and out['hub_max_epochs'] == 3
    # {{fileDirname}} in the packaged config points into the installed package
    for teacher in (out['teacher'], out['hub_teacher']):
        assert teacher.startswith(str(installed)) and osp.isfile(teacher)
    assert out['model'] == 'deit_plugin.models.distill_classifier.DistillationClassifier'
    assert out['teacher_model'] == 'ImageClassifier'

    # without importing deit_plugin first, mmengine refuses the name (what the docs explain)
    (user / 'plain.py').write_text(
        "from mmengine.config import Config\nConfig.fromfile('my_student.py')\n"
    )
    proc = subprocess.run(
        [sys.executable, 'plain.py'],
        cwd=str(user),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert 'does not support to load deit_plugin config' in proc.stderr
