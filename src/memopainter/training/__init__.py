"""Training: the loop of the paper's Fig. 3, its per-batch steps, progress events, sample grids, DDP."""
