"""Every relative link and every repository path named in the documentation exists.

Checked files: the top-level ``*.md`` files, ``docs/**/*.md`` and ``configs/**/*.md``. Checked
names:

- Markdown links and images ``[text](target)`` that are not URLs: the target file (relative to
  the page) must exist inside the repository; a ``#fragment`` must be a heading of the target
  page (GitHub's anchor rule);
- paths in ``code spans`` and fenced code blocks (``a/b...``, at least one ``/``): a path whose
  first component is a top-level entry of the repository must exist (``{a,b}`` alternatives and
  ``*`` globs are expanded); any other path that names a file (an extension) or a directory (a
  trailing ``/``) must exist in the installed package its first component names
  (``mmengine/runner/loops.py``). Slashes in formulas (``H/p``, ``NaN/Inf``) are not paths.

Paths in code that start with ``./`` or ``../`` are ``_base_`` paths of a config: they must
exist seen from some folder under ``configs/``.

Exempt by rule: paths that ``.gitignore`` excludes (``work_dirs/``, ``data/``, ``checkpoints/``,
``.venv/``: tools create them at run time or the user provides them), the user's own files in
examples (a path component starting with ``my_``, e.g. ``configs/my_set/teacher.py``), mmengine
config variables (``{{fileDirname}}/x.py``), absolute paths and paths under ``~``. Any other path
is reported: a typo in the first component is not silently skipped.

The student configs shown in the README and the config guide are built as written, so that the
first config a user copies cannot rot either.
"""

import fnmatch
import glob
import importlib.util
import os
import os.path as osp
import re
from typing import Dict, Iterator, List, Optional, Tuple

import pytest


def find_root() -> str:
    path = osp.dirname(osp.abspath(__file__))
    while not osp.isfile(osp.join(path, 'setup.cfg')):
        parent = osp.dirname(path)
        if parent == path:
            raise RuntimeError(f'no setup.cfg above {__file__}: cannot find the repository root')
        path = parent
    return path


ROOT = find_root()

FENCE = re.compile(r'^\s*(```|~~~)')
HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
REF_LINK = re.compile(r'^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$')
CODE_SPAN = re.compile(r'(`+)(.+?)\1')
# a relative path with at least one '/', not preceded by a path character or ':' (so that
# 'mmpretrain::_base_/x.py' and URLs do not count)
PATH = re.compile(r'(?<![\w./:~{}*-])([\w.{},*-]+(?:/[\w.{},*-]+)+/?)')
SCHEME = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')
FILE_NAME = re.compile(
    r'\.(?:[A-Za-z]\w*|\{[^}]*\})$'
)  # ends in an extension: 'x.py', 'x.{md,csv}'


def doc_files(root: str) -> List[str]:
    files = sorted(glob.glob(osp.join(root, '*.md')))
    for sub in ('docs', 'configs'):
        files += sorted(glob.glob(osp.join(root, sub, '**', '*.md'), recursive=True))
    return files


def ignore_patterns(root: str) -> List[str]:
    path = osp.join(root, '.gitignore')
    if not osp.isfile(path):
        return []
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def is_ignored(rel: str, patterns: List[str]) -> bool:
    parts = rel.strip('/').split('/')
    for pattern in patterns:
        pattern = pattern.lstrip('/')
        if pattern.endswith('/'):  # a directory: any component but the file itself
            name = pattern.rstrip('/')
            if any(fnmatch.fnmatch(p, name) for p in parts[:-1]) or (
                rel.endswith('/') and fnmatch.fnmatch(parts[-1], name)
            ):
                return True
        elif '/' in pattern:
            if fnmatch.fnmatch(rel.strip('/'), pattern):
                return True
        elif any(fnmatch.fnmatch(p, pattern) for p in parts):
            return True
    return False


def expand_braces(path: str) -> List[str]:
    match = re.search(r'\{([^{}]*)\}', path)
    if not match:
        return [path]
    out = []
    for alt in match.group(1).split(','):
        out += expand_braces(path[: match.start()] + alt + path[match.end() :])
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # a link keeps its text
    return re.sub(r'[^\w\- ]', '', text.strip().lower()).replace(' ', '-')


def split_markdown(text: str) -> Tuple[List[Tuple[int, str]], List[Tuple[int, str]]]:
    """(prose lines, fenced code lines), each as (line number, text)."""
    prose, code, fenced = [], [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if match and (fenced is None or match.group(1) == fenced):
            fenced = match.group(1) if fenced is None else None
            continue
        (code if fenced else prose).append((number, line))
    return prose, code


def anchors(path: str, cache: Dict[str, set]) -> set:
    if path not in cache:
        with open(path, encoding='utf-8') as f:
            prose, _ = split_markdown(f.read())
        seen: Dict[str, int] = {}
        found = set()
        for _, line in prose:
            match = HEADING.match(line)
            if match:
                base = slug(match.group(2))
                count = seen.get(base, 0)
                seen[base] = count + 1
                found.add(base if count == 0 else f'{base}-{count}')
        cache[path] = found
    return cache[path]


def links(prose: List[Tuple[int, str]]) -> Iterator[Tuple[int, str]]:
    for number, line in prose:
        text = CODE_SPAN.sub('', line)
        for match in LINK.finditer(text):
            yield number, match.group(1)
        match = REF_LINK.match(text)
        if match:
            yield number, match.group(1)


def code_paths(
    prose: List[Tuple[int, str]], code: List[Tuple[int, str]]
) -> Iterator[Tuple[int, str]]:
    for number, line in prose:
        for span in CODE_SPAN.finditer(line):
            for match in PATH.finditer(span.group(2)):
                yield number, match.group(1)
    for number, line in code:
        for match in PATH.finditer(line):
            yield number, match.group(1)


def check_link(
    doc: str, target: str, root: str, patterns: List[str], cache: Dict[str, set]
) -> Optional[str]:
    if SCHEME.match(target):
        return None
    file_part, _, fragment = target.partition('#')
    path = osp.normpath(osp.join(osp.dirname(doc), file_part)) if file_part else doc
    rel = osp.relpath(path, root)
    if rel.startswith('..'):
        return f'link {target!r} points outside the repository'
    if is_ignored(rel.replace(os.sep, '/'), patterns):
        return None
    if not osp.exists(path):
        return f'link {target!r}: {rel} does not exist'
    if fragment and path.endswith('.md') and fragment not in anchors(path, cache):
        return f'link {target!r}: no heading with the anchor #{fragment} in {rel}'
    return None


def exists(base: str, name: str) -> bool:
    return all(
        glob.glob(osp.join(base, v)) if '*' in v else osp.exists(osp.join(base, v))
        for v in expand_braces(name)
    )


def check_path(name: str, root: str, top: set, patterns: List[str]) -> Optional[str]:
    name = name.rstrip(',.')
    parts = name.split('/')
    first = parts[0]
    if (
        is_ignored(name, patterns)
        or '{{' in name
        or any(p.startswith('my_') for p in parts)
        or not (first in top or name.endswith('/') or FILE_NAME.search(name))
    ):
        return None  # run-time, user's or variable path, or no file name ('H/p', 'NaN/Inf')
    if first in ('.', '..'):
        folders = [d for d, _, _ in os.walk(osp.join(root, 'configs'))]
        if any(exists(folder, name) for folder in folders):
            return None
        return f'path `{name}`: not found from any folder under configs/'
    if first in top:
        base = root
    else:
        spec = importlib.util.find_spec(first) if first.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            return (
                f'path `{name}`: {first!r} is neither a top-level entry of the repository '
                'nor an installed package'
            )
        base = osp.dirname(list(spec.submodule_search_locations)[0])
    for variant in expand_braces(name):
        if not exists(base, variant):
            where = 'the repository' if base == root else f'the installed {first}'
            return f'path `{name}`: {variant} does not exist in {where}'
    return None


def find_problems(root: str) -> List[str]:
    patterns = ignore_patterns(root)
    top = {name for name in os.listdir(root) if not is_ignored(name + '/', patterns)}
    cache: Dict[str, set] = {}
    problems = []
    for doc in doc_files(root):
        with open(doc, encoding='utf-8') as f:
            prose, code = split_markdown(f.read())
        found = [
            (number, check_link(doc, target, root, patterns, cache))
            for number, target in links(prose)
        ]
        found += [
            (number, check_path(name, root, top, patterns))
            for number, name in code_paths(prose, code)
        ]
        rel_doc = osp.relpath(doc, root)
        problems += [
            f'{rel_doc}:{number}: {problem}'
            for number, problem in sorted(found, key=lambda item: item[0])
            if problem
        ]
    return problems


def test_every_link_and_path_in_the_docs_exists():
    docs = doc_files(ROOT)
    assert osp.join(ROOT, 'README.md') in docs and any('/docs/' in d for d in docs)
    problems = find_problems(ROOT)
    assert not problems, (
        'the documentation names files that do not exist (fix the link/path, '
        'or create the file):\n' + '\n'.join(problems)
    )


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding='utf-8')


def test_the_check_reports_broken_links_paths_and_anchors(tmp_path):
    write(tmp_path / 'setup.cfg', '')
    write(tmp_path / '.gitignore', 'work_dirs/\n*.egg-info/\n')
    write(tmp_path / 'tools' / 'train.py', '')
    write(tmp_path / 'configs' / 'a_b.py', '')
    write(tmp_path / 'configs' / 'a_c.py', '')
    write(tmp_path / 'docs' / 'guide.md', '# Guide\n\n## Train ≥ 2.6 `fast`\n')
    write(
        tmp_path / 'README.md',
        '\n'.join(
            [
                '# Title',
                '[ok](docs/guide.md) [ok anchor](docs/guide.md#train--26-fast) [own](#title)',
                '[url](https://example.com/x/y.md) ![missing image](docs/images/none.png)',
                '[bad anchor](docs/guide.md#nowhere) [missing page](docs/missing.md)',
                'Run `python tools/train.py configs/a_{b,c}.py` then `tools/test.py`.',
                'Outputs go to `work_dirs/demo/results.md`; `mmpretrain::_base_/x.py` is upstream,',
                'so is `mmengine/runner/checkpoint.py`; `mmengine/runner/nothing.py` is not;',
                '`tool/train.py` is a typo and `configs/a_*.py` matches, `configs/z_*.py` does not.',  # noqa: E501
                '```bash',
                'python tools/train.py configs/a_d.py --work-dir work_dirs/x',
                '```',
                "Your `configs/my_set/x.py` may say `_base_ = ['../configs/a_b.py']` or `./a_c.py`,",  # noqa: E501
                "`teacher='{{fileDirname}}/t.py'`, but not `../elsewhere/a_b.py`.",
            ]
        ),
    )
    problems = find_problems(str(tmp_path))
    assert [p.split(': ', 1)[0] for p in problems] == [
        'README.md:3',
        'README.md:4',
        'README.md:4',
        'README.md:5',
        'README.md:7',
        'README.md:8',
        'README.md:8',
        'README.md:10',
        'README.md:13',
    ]
    text = '\n'.join(problems)
    for expected in (
        'docs/images/none.png does not exist',
        'anchor #nowhere',
        'docs/missing.md does not exist',
        'tools/test.py does not exist',
        'runner/nothing.py does not exist in the installed mmengine',
        "'tool' is neither",
        'configs/z_*.py does not exist',
        'configs/a_d.py does not exist',
        '`../elsewhere/a_b.py`: not found from any folder under configs/',
    ):
        assert expected in text, (expected, problems)


def first_python_block(page: str) -> str:
    with open(osp.join(ROOT, page), encoding='utf-8') as f:
        match = re.search(r'^```python\n(.*?)^```', f.read(), re.S | re.M)
    assert match, f'{page} has no python code block'
    return match.group(1)


@pytest.mark.parametrize('page', ['README.md', 'docs/user_guides/own_config.md'])
def test_the_documented_student_config_builds_and_trains_only_the_student(page, tmp_path):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.registry import MODELS

    from deit_plugin import DistillationClassifier, DistilledVisionTransformer

    config = tmp_path / 'student.py'
    config.write_text(first_python_block(page), encoding='utf-8')
    cfg = Config.fromfile(str(config))
    assert cfg.custom_imports.imports == ['deit_plugin']
    model = MODELS.build(cfg.model)  # the teacher's checkpoint is not needed to build
    assert isinstance(model, DistillationClassifier)
    assert isinstance(model.backbone, DistilledVisionTransformer)
    assert model.teacher is not None
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    in_optimizer = {id(p) for group in wrapper.optimizer.param_groups for p in group['params']}
    names = {id(p): name for name, p in model.named_parameters()}
    teacher = {id(p) for p in model.teacher.parameters()}
    assert not in_optimizer & teacher, (
        f'{page}: teacher parameters in the optimizer, e.g. '
        f'{sorted(names[i] for i in in_optimizer & teacher)[:3]}'
    )
    student = set(names) - teacher
    assert in_optimizer == student, sorted(names[i] for i in student ^ in_optimizer)[:3]
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert 'deit_plugin.DistillationHook' in hooks


@pytest.mark.parametrize(
    'heading,anchor',
    [
        ('Checkpoints under torch ≥ 2.6', 'checkpoints-under-torch--26'),
        (
            '`make demo-det`: does the distilled student help?',
            'make-demo-det-does-the-distilled-student-help',
        ),
        ('224 → 384', '224--384'),
    ],
)
def test_anchor_rule_matches_github(heading, anchor):
    assert slug(heading) == anchor
