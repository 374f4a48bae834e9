"""Layer 4, training: samplers, loss, GradCache, the LightningModule and LightningDataModule, distributed
helpers, checkpoint / resume state, callbacks and the optional MLM pretraining stage."""
