"""bf16 autocast training on CPU (deit_plugin.CPUAmpOptimWrapper, tools/train.py --amp) and the
teacher's path in a step (precision, inference mode, no preprocessor re-run, DDP exclusion)."""

import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from model_builders import batch, student
from tool_modules import ROOT, load_tool

import deit_plugin
from deit_plugin import CPUAmpOptimWrapper

pytestmark = pytest.mark.slow  # mmengine Runner / subprocess runs
train_tool = load_tool('train.py')
STUDENT_CFG = osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py')


def optim_wrapper(model, type_='deit_plugin.CPUAmpOptimWrapper', **kwargs):
    return build_optim_wrapper(
        model,
        dict(
            type=type_,
            constructor='deit_plugin.StudentOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-3),
            **kwargs,
        ),
    )


def test_wrapper_is_built_through_mmengine_by_its_prefixed_name():
    assert isinstance(optim_wrapper(student()), CPUAmpOptimWrapper)
    assert deit_plugin.CPUAmpOptimWrapper is CPUAmpOptimWrapper


def test_forward_runs_in_bf16_while_weights_grads_and_adam_state_stay_fp32():
    model = student()
    model.train()
    wrapper = optim_wrapper(model)
    out_dtypes = []
    model.backbone.layers[0].attn.qkv.register_forward_hook(
        lambda m, args, out: out_dtypes.append(out.dtype)
    )
    before = copy.deepcopy(model.backbone.state_dict())
    model.train_step(batch(), wrapper)
    assert out_dtypes == [torch.bfloat16]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    state = wrapper.optimizer.state[model.backbone.cls_token]
    assert state['exp_avg'].dtype == torch.float32 and state['exp_avg'].abs().sum() > 0
    changed = [k for k, v in model.backbone.state_dict().items() if not torch.equal(v, before[k])]
    assert 'cls_token' in changed and 'layers.0.attn.qkv.weight' in changed


def test_bf16_loss_equals_fp32_loss_up_to_bf16_rounding():
    model = student()
    model.train()
    twin = copy.deepcopy(model)
    loss_fp32 = model.train_step(batch(), optim_wrapper(model, 'OptimWrapper'))['loss']
    loss_bf16 = twin.train_step(batch(), optim_wrapper(twin))['loss']
    loss_fp32, loss_bf16 = float(loss_fp32.detach()), float(loss_bf16.detach())
    assert loss_bf16 != loss_fp32  # bf16 really ran
    assert loss_bf16 == pytest.approx(loss_fp32, rel=2e-2)


def test_float16_and_non_cpu_models_are_refused_with_the_fix():
    with pytest.raises(ValueError, match='loss scaler'):
        optim_wrapper(student(), dtype='float16')
    model = student()
    wrapper = optim_wrapper(model)
    meta = torch.nn.Linear(2, 2, device='meta')
    with pytest.raises(RuntimeError, match='AmpOptimWrapper'):
        with wrapper.optim_context(meta):
            pass


def test_train_py_amp_picks_cpu_bf16_wrapper_without_cuda_and_mmengine_amp_with_cuda(monkeypatch):
    def amp_cfg():
        args = train_tool.parse_args([STUDENT_CFG, '--amp'])
        return train_tool.merge_args(Config.fromfile(STUDENT_CFG), args)

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = amp_cfg()
    assert cfg.optim_wrapper.type == 'deit_plugin.CPUAmpOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.constructor == 'deit_plugin.StudentOptimWrapperConstructor'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = amp_cfg()
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    cfg = Config.fromfile(STUDENT_CFG)
    cfg.optim_wrapper.type = 'MyWrapper'
    with pytest.raises(SystemExit, match='custom one'):
        train_tool.set_amp_optim_wrapper(cfg)


# -- the teacher's path -------------------------------------------------------------------------
def preprocessed(model, n=4):
    return model.data_preprocessor(batch(n), training=True)


def test_teacher_precision_is_chosen_apart_from_the_step():
    data = preprocessed(student())
    fp32_ref = {}
    for precision in ('auto', 'fp32', 'bf16'):
        torch.manual_seed(0)
        model = student(teacher_precision=precision)
        fp32_ref.setdefault('logits', model.teacher_logits(data['inputs']))
        with torch.autocast('cpu', dtype=torch.bfloat16):
            in_bf16_step = model.teacher_logits(data['inputs'])
        in_fp32_step = model.teacher_logits(data['inputs'])
        fp32 = fp32_ref['logits']
        assert in_bf16_step.dtype == in_fp32_step.dtype == torch.float32
        if precision == 'auto':  # follows the step
            assert torch.equal(in_fp32_step, fp32)
            assert not torch.equal(in_bf16_step, fp32)
            torch.testing.assert_close(in_bf16_step, fp32, atol=0.05, rtol=0.05)
        elif precision == 'fp32':  # float32 teacher labels under a bf16 student
            assert torch.equal(in_bf16_step, fp32) and torch.equal(in_fp32_step, fp32)
        else:  # bf16 teacher even in a float32 step
            assert torch.equal(in_fp32_step, in_bf16_step)
            assert not torch.equal(in_fp32_step, fp32)
    with pytest.raises(ValueError, match='teacher_precision must be one of'):
        student(teacher_precision='fp16')


def test_teacher_logits_leave_no_autograd_state_but_feed_the_soft_loss_backward():
    model = student(distillation='soft')
    model.train()
    data = preprocessed(model)
    logits = model.teacher_logits(data['inputs'])
    assert not logits.requires_grad and logits.grad_fn is None
    assert not logits.is_inference()  # usable in autograd (the soft KL saves it)
    losses = model.loss(data['inputs'], data['data_samples'])
    (losses['loss_cls'] + losses['loss_dist']).backward()
    assert model.backbone.dist_token.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_teacher_data_preprocessor_is_never_rerun_in_a_step():
    # the teacher normalises differently: the student's batch is converted arithmetically
    from model_builders import teacher_cfg

    model = student(teacher=teacher_cfg(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0]))
    model.train()
    calls = []
    model.teacher.data_preprocessor.register_forward_pre_hook(lambda m, a: calls.append(1))
    seen = []
    model.teacher.backbone.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    data = batch()
    model.train_step(data, optim_wrapper(model, 'OptimWrapper'))
    assert calls == []
    expected = torch.stack(data['inputs']).float() / 255.0
    torch.testing.assert_close(seen[0], expected, atol=1e-5, rtol=1e-5)
    assert seen[0].is_contiguous(memory_format=torch.channels_last)


def test_ddp_wraps_the_student_only(tmp_path):
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel

    model = student()
    teacher_names = {f'teacher.{n}' for n, _ in model.teacher.named_parameters()} | {
        f'teacher.{n}' for n, _ in model.teacher.named_buffers()
    }
    assert set(model._ddp_params_and_buffers_to_ignore) == teacher_names
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        ddp = MMDistributedDataParallel(module=model, device_ids=None, broadcast_buffers=False)
        synced = {id(p) for p in ddp._module_parameters}
        assert synced == {
            id(p) for n, p in model.named_parameters() if not n.startswith('teacher.')
        }
        assert not any(id(p) in synced for p in model.teacher.parameters())
    finally:
        dist.destroy_process_group()


def test_cpu_multi_process_needs_the_pytorch_launcher(monkeypatch):
    from mmengine.config import ConfigDict

    from tools._support.dist_utils import prepare_cpu_distributed

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(RuntimeError, match='torchrun'):
        prepare_cpu_distributed(ConfigDict(launcher='slurm'))
