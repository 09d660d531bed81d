"""Graph: everything between a bundle on disk and a graph in memory.

Rooms:
    ``schema``          the vocabulary: labels, relationship types, properties, edge types.
    ``bundle*``         reading and validating a bundle (the import data contract).
    ``export``          ``GraphExport``, the graph as arrays, and its point-in-time view.
    ``neo4j/``          the local server, the driver wrapper, imports, the reader, write-back.
    ``synth/``          the synthetic marketplace generator (writes bundles, never touches Neo4j).
    ``sampling/``       the mini-batch neighbour sampler over a ``GraphExport``.
    ``rings/``          fraud-ring detection as graph analytics over any risk array.
"""
