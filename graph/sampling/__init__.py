"""Mini-batch neighbour sampling over a ``GraphExport``: ``sampler`` (the PyG-compatible sampler
and loader), ``nodes`` (seed-node batching) and ``ops`` (the vectorised per-hop kernels)."""
