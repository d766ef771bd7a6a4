"""The detection-transfer demo (docs/experiments/detection_transfer.md): ``make demo-det``,
``python tools/run_det_demo.py`` or ``python -m projects.det_transfer``.

Modules: :mod:`.protocol` defines the runs (initialisations, training subsets, each run's
config and command); :mod:`.runs` trains them through the project's own tools as subprocesses,
several at a time, reusing finished runs; :mod:`.report` writes the table, the results files and
the plot.

Study v2 (docs/experiments/detection_transfer_v2_protocol.md): :mod:`.protocol_v2` defines it
(backbones random / no-teacher student / distilled student, photo and plain targets, full and
10% training sets, seeds, verdicts); ``python -m projects.det_transfer.study_v2`` runs it.
"""
