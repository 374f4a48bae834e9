"""A NaN loss stops training with a clear error and keeps the last good checkpoint."""

import lightning as L
import pytest
import torch
from helpers import cpu_trainer, tiny_datamodule

from mdr.modeling.encoder import DualEncoder
from mdr.training.loss import InfoNCELoss
from mdr.training.module import DualEncoderModule, NonFiniteLossError


class NaNAtStep(DualEncoderModule):
    def compute_loss(self, batch):
        loss = super().compute_loss(batch)
        return loss * float("nan") if self.global_step >= 4 else loss


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_model_dir, data_dir):
    enc = DualEncoder(str(tiny_model_dir), query_max_length=24, passage_max_length=32)
    dm = tiny_datamodule(data_dir, enc, steps_per_epoch=50, seed=0, batch_size=8)
    module = NaNAtStep(enc, InfoNCELoss(), lr=1e-3)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=tmp_path, filename="step{step}", every_n_train_steps=2, save_top_k=-1, save_last=True
    )
    trainer = cpu_trainer(20, [ckpt])
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at global step 4 .* last good checkpoint"):
        trainer.fit(module, datamodule=dm)
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert last["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
    assert last["RetrievalDataModule"]["next_step"] == 4  # the sampler stream position is saved too
