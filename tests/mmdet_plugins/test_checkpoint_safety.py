"""torch >= 2.6 loads weights_only: our runner saves and loads mmengine checkpoints safely."""

import pytest
import torch
from mmengine.logging import HistoryBuffer


def test_stock_mmengine_checkpoint_gets_a_clear_error(tmp_path):
    from mmdet_plugins.runner import CheckpointHistoryBuffer, checkpoint_safe_globals

    buf = HistoryBuffer()
    buf.update(1.0)
    stock = {"message_hub": {"log_scalars": {"loss": buf}}}
    torch.save(stock, tmp_path / "stock.pth")
    with pytest.raises(RuntimeError, match="trusted_checkpoints=True"):
        with checkpoint_safe_globals():
            torch.load(tmp_path / "stock.pth")
    # explicit opt-in for a trusted file; torch says so itself
    with checkpoint_safe_globals(trusted=True), pytest.warns(UserWarning, match="weights_only=False"):
        assert torch.load(tmp_path / "stock.pth")["message_hub"]["log_scalars"]["loss"].current() == 1.0
    # what AlignShiftRunner writes instead loads under the allow-list, statistics intact
    ours = {"message_hub": {"log_scalars": {"loss": CheckpointHistoryBuffer.from_buffer(buf)}}}
    torch.save(ours, tmp_path / "ours.pth")
    with checkpoint_safe_globals():
        loaded = torch.load(tmp_path / "ours.pth")["message_hub"]["log_scalars"]["loss"]
    loaded.update(3.0)
    assert loaded.mean() == 2.0 and loaded.max() == 3.0
    # nothing else was allowed: an arbitrary object is still refused
    torch.save({"x": object()}, tmp_path / "evil.pth")
    with pytest.raises(RuntimeError, match="Weights only load failed"):
        with checkpoint_safe_globals():
            torch.load(tmp_path / "evil.pth")
