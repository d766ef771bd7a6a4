"""Every number the README shows is the number in the committed file that produced it.

- the demo's table (between ``<!-- demo-results -->`` markers) is the published demo run's
  ``results.md`` (docs/experiments/demo/results.md, what ``tools/run_demo.py`` writes to
  ``work_dirs/demo/results.md``), and its derived rows follow from its measured rows;
- the study's row is the paired result of arm ``5k-40`` in the study's published
  ``results.csv`` and ``results.md`` (docs/experiments/paper_claims_v2);
- the demo's teacher is the study's strong 5,000-image CNN teacher (same published weights);
- the settings the README states are the configs' and docs' (images, epochs, Python, bad inputs).
"""

import csv
import os.path as osp
import re
import statistics

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_RESULTS = 'docs/experiments/demo/results.md'
STUDY = 'docs/experiments/paper_claims_v2'
STUDENT_CFG = 'configs/fashion_mnist/study/deit_tiny_student_v2.py'
TEACHER_CFG = 'configs/fashion_mnist/study/resnet_cifar_teacher_v2.py'
NUMBER = r'[+-]?\d+(?:\.\d+)?'


def read(path: str) -> str:
    with open(osp.join(ROOT, path), encoding='utf-8') as f:
        return f.read()


def readme_demo_block() -> str:
    text = read('README.md')
    match = re.search(r'<!-- demo-results -->\n(.*?)<!-- /demo-results -->', text, re.S)
    assert match, 'README.md lost its <!-- demo-results --> ... <!-- /demo-results --> markers'
    return match.group(1)


def table_rows(text: str) -> list:
    return [line for line in text.splitlines() if line.startswith('|')]


def row(rows: list, starts: str) -> list:
    """The cells (bold marks removed) of the one table row whose text starts with ``starts``
    (cells joined with ``' | '``)."""
    cells = [[c.strip().replace('**', '') for c in r.strip().strip('|').split('|')] for r in rows]
    found = [c for c in cells if ' | '.join(c).startswith(starts)]
    assert len(found) == 1, f'expected one row starting {starts!r}, found {len(found)}'
    return found[0]


def test_the_readme_demo_table_is_the_published_demo_results():
    published = read(DEMO_RESULTS)
    block = readme_demo_block()
    assert table_rows(block) == table_rows(published), (
        f"the README demo table differs from {DEMO_RESULTS}: copy the run's "
        'work_dirs/demo/results.md to it and its table into the README'
    )
    whole = [line for line in published.splitlines() if line.startswith('whole demo:')]
    assert len(whole) == 1 and whole[0] in block.splitlines()


def test_the_demo_gain_is_the_difference_of_its_fused_rows():
    rows = table_rows(read(DEMO_RESULTS))
    hard = float(row(rows, 'DeiT⚗ student, hard distillation')[3])
    none = float(row(rows, 'DeiT⚗ student, no teacher')[3])
    gain = float(row(rows, 'gain from distillation')[3])
    # the table rounds each number to 2 decimals: the difference of the rounded ones may be off
    # by one in the last place
    assert abs((hard - none) - gain) <= 0.011, (hard, none, gain)


def study_paired_differences(arm: str = '5k-40') -> dict:
    fused = {}
    with open(osp.join(ROOT, STUDY, 'results.csv'), newline='') as f:
        for r in csv.DictReader(f):
            if r['arm'] == arm and r['condition'] in ('hard', 'none'):
                fused.setdefault(r['condition'], {})[int(r['seed'])] = float(r['fused_top1'])
    seeds = sorted(set(fused['hard']) & set(fused['none']))
    return {s: fused['hard'][s] - fused['none'][s] for s in seeds}


def test_the_study_row_is_the_study_result():
    diffs = study_paired_differences()
    assert sorted(diffs) == [0, 1, 2]
    values = list(diffs.values())
    per_seed = ' / '.join(f'{d:+.2f}' for d in values)
    expected = f'{statistics.mean(values):+.2f} ± {statistics.stdev(values):.2f} ({per_seed})'
    cells = row(table_rows(read(DEMO_RESULTS)), 'gain in the paper-claims study, arm 5k-40')
    assert cells[0].endswith('seeds 0, 1, 2 (paired)')
    assert cells[3] == expected
    # the same numbers in the study's own report
    claims = row(table_rows(read(f'{STUDY}/results.md')), '5k-40 | (a) | hard − no teacher')
    assert f'{claims[4]} ({claims[3]})' == expected


def test_the_demo_teacher_is_the_studys_strong_cnn_teacher():
    cells = row(table_rows(read(DEMO_RESULTS)), 'teacher ResNet_CIFAR-18')
    name = re.search(r'`([^`]+\.pth)`', cells[0]).group(1)
    assert osp.isfile(osp.join(ROOT, 'checkpoints/fashion_mnist', name))
    epoch = int(re.search(r'_epoch(\d+)-', name).group(1))
    study = read(f'{STUDY}/results.md')
    match = re.search(
        r'5k: strong CNN \(ResNet_CIFAR-18\): epoch (\d+), held-out '
        rf'({NUMBER}), test ({NUMBER})',
        study,
    )
    assert match, f'{STUDY}/results.md lost its 5k teachers line'
    assert int(match.group(1)) == epoch
    assert match.group(3) == cells[3]


@pytest.fixture(scope='module')
def readme() -> str:
    """The README's text with every run of white space (line breaks included) as one space."""
    return ' '.join(read('README.md').split())


def test_the_stated_demo_settings_are_the_configs(readme):
    student = Config.fromfile(osp.join(ROOT, STUDENT_CFG))
    teacher = Config.fromfile(osp.join(ROOT, TEACHER_CFG))
    start, stop = student.train_dataloader.dataset.index_range
    images = stop - start
    assert f'on {images:,} training images' in readme
    assert f'for {student.train_cfg.max_epochs} epochs' in readme
    assert f'trains the teacher first ({teacher.train_cfg.max_epochs} epochs' in readme


def test_the_python_version_is_setup_cfgs(readme):
    required = re.search(r'python_requires\s*=\s*>=\s*([\d.]+)', read('setup.cfg')).group(1)
    assert f'Python ≥ {required}' in readme
    assert f'Python ≥ {required}' in read('docs/get_started.md')


def test_the_count_of_refused_inputs_is_the_bad_input_table(readme):
    page = read('docs/user_guides/resume_and_failures.md')
    section = page[page.index('## Bad inputs') :]
    section = section[: section.index('\n## ', 1)]
    cases = len(table_rows(section)) - 2  # header and separator
    assert f'{cases} kinds of malformed input' in readme
    assert f'The {cases} cases of' in section
