"""Tolaria, the training academy: the training loop, checkpoints, rollback and the run folder."""
