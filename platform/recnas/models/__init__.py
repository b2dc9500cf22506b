"""Models: operators, the supernet, standalone subnets, baselines, cost."""
