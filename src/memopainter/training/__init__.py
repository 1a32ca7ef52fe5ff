"""Training loop support: checkpoints that describe themselves, resume exactly and never unpickle."""
