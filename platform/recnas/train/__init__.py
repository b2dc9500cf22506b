"""Training on Ray Train: the per-worker loop, launcher, optimizers, metrics."""
