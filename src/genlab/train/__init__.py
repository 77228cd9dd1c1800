"""The one training driver (``genlab.train.loop``) and the two artifacts it writes
(``genlab.train.checkpoint``). A family's trainer lives in its folder under ``genlab.families``."""

from genlab.train.loop import build_trainer, build_training, train_variant, training_steps

__all__ = ["build_trainer", "build_training", "train_variant", "training_steps"]
