# The no-teacher baseline for the demo (the paper's "DeiT⚗ without teacher"): the same student,
# data and schedule as deit_tiny_distill.py, with both heads trained on the ground truth
# (distillation='none'). The teacher is kept only to measure agreement; it does not train.
_base_ = ['./deit_tiny_distill.py']
model = dict(head=dict(distillation='none'))
