"""Thread and job counts below 1, and negative image counts, are refused by every tool's parser,
tools/ and projects/ alike (a thread count of 0 is refused, not replaced by torch's default)."""

import importlib

import pytest
from tool_modules import load_tool

TOOLS = {
    'train.py': ['cfg.py'],
    'test.py': ['cfg.py', 'ckpt.pth'],
    'record_teacher.py': ['cfg.py', '--epochs', '1', '--out', 'x'],
    'analysis/agreement.py': ['cfg.py', 'ckpt.pth'],
    'analysis/attention_maps.py': ['cfg.py', 'ckpt.pth', 'img.png'],
    'analysis/token_similarity.py': ['cfg.py', 'ckpt.pth'],
}


@pytest.mark.parametrize('tool', sorted(TOOLS))
@pytest.mark.parametrize('threads', ['0', '-2', 'two'])
def test_a_thread_count_below_one_is_refused(tool, threads, capsys):
    with pytest.raises(SystemExit) as e:
        load_tool(tool).main([*TOOLS[tool], '--threads', threads])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert 'argument --threads:' in err
    assert ('must be at least 1, got' in err) if threads != 'two' else ("got 'two'" in err)


# the projects behind tools/benchmark.py, tools/run_det_demo.py and the cache experiment; the
# other required arguments are given so that only --threads can be refused
PROJECTS = {
    'projects.benchmark': [],
    'projects.det_transfer': [],
    'projects.teacher_cache_replay': ['--teacher-ckpt', 'teacher.pth'],
}


@pytest.mark.parametrize('project', sorted(PROJECTS))
@pytest.mark.parametrize('threads', ['0', '-1'])
def test_the_projects_refuse_a_thread_count_below_one(project, threads, capsys):
    main = importlib.import_module(f'{project}.__main__').main
    with pytest.raises(SystemExit) as e:
        main([*PROJECTS[project], '--threads', threads])
    assert e.value.code == 2
    assert f'argument --threads: must be at least 1, got {threads}' in capsys.readouterr().err


@pytest.mark.parametrize('tool', ['analysis/agreement.py', 'analysis/token_similarity.py'])
def test_a_negative_image_count_is_refused(tool, capsys):
    with pytest.raises(SystemExit):
        load_tool(tool).main(['cfg.py', 'ckpt.pth', '--max-images', '-1'])
    assert 'argument --max-images: must be 0 (all) or more, got -1' in capsys.readouterr().err


def test_the_study_refuses_zero_jobs(capsys):
    from projects.paper_claims.__main__ import main

    with pytest.raises(SystemExit):
        main(['--jobs', '0'])
    assert 'argument --jobs: must be at least 1, got 0' in capsys.readouterr().err
