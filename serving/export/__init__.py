"""``riskgraph export``: scores, rings and ring members as Parquet or CSV parts with a manifest.

``tables`` reads what to export from Neo4j (filters as query parameters), ``pseudonym`` turns
ids into keyed HMACs, ``write`` writes the parts and ``manifest.json`` atomically, ``command``
wires them for the CLI.
"""
