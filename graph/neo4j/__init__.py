"""Neo4j I/O: the project's own server (``server``), the driver wrapper (``store``), the
transactional and offline imports (``load``, ``bulk``), the reader that pulls the graph into
arrays (``reader``) and the write-back of scores (``writeback``).

Every query is parameterised and built from ``graph.schema`` names.
"""
