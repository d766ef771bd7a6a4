"""The paper-claims study (docs/experiments/paper_claims.md): ``python -m projects.paper_claims``.

Modules: :mod:`.runs` trains and tests through the project's own tools as subprocesses,
resumably; :mod:`.protocol` defines the study (arms, teachers, conditions); :mod:`.report` turns
finished runs into tables, verdicts and plots.
"""
