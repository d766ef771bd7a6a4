import io
import os

import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub


def roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf)  # torch>=2.6 default: weights_only=True


def test_message_hub_state_loads_under_weights_only():
    hub = MessageHub.get_instance('deit_plugin_test_hub')
    for i in range(5):
        hub.update_scalar('train/loss', 1.0 / (i + 1))
    hub.update_info('iter', 5)
    state = roundtrip({'message_hub': hub.state_dict(), 'state_dict': {'w': torch.ones(2)}})
    loaded = state['message_hub']['log_scalars']['train/loss']
    assert isinstance(loaded, HistoryBuffer)
    assert loaded.mean() == pytest.approx(sum(1.0 / (i + 1) for i in range(5)) / 5)
    assert loaded.current() == pytest.approx(0.2)


def test_arbitrary_code_in_a_checkpoint_is_still_refused():
    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned',))

    buf = io.BytesIO()
    torch.save({'x': Evil()}, buf)
    buf.seek(0)
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(buf)
