"""Multi-process training on CPU-only machines through mmengine's ``pytorch`` launcher."""

import os

import torch
import torch.distributed as torch_dist


def prepare_cpu_distributed(cfg) -> None:
    """Let ``launcher='pytorch'`` run on a machine without CUDA (gloo backend).

    Upstream bugs worked around (mmengine 0.10.7):
    - mmengine's ``_init_dist_pytorch`` calls
      ``torch.cuda.set_device(local_rank)`` unconditionally, so every CPU process dies with
      "Found no NVIDIA driver". The Runner skips its own ``init_dist`` when a process group
      already exists, so we create it here with gloo (torchrun's env:// variables).
    - ``Runner.wrap_model`` passes
      ``device_ids=[LOCAL_RANK]`` to DistributedDataParallel, which PyTorch refuses for CPU
      modules; ``model_wrapper_cfg`` with ``device_ids=None`` is used instead.
    Nothing changes when CUDA is available or when not launched distributed.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise RuntimeError(
            f"launcher={launcher!r} on a machine without CUDA: mmengine's slurm/mpi launchers "
            f'set a CUDA device. Launch CPU processes with torchrun instead (tools/dist_train.sh, '
            f"launcher='pytorch'; for several nodes set NNODES, NODE_RANK, MASTER_ADDR, PORT)."
        )
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']), world_size=int(os.environ['WORLD_SIZE'])
        )
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
