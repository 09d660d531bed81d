"""The synthetic marketplace: users, merchants, products, devices, orders, reviews and logins,
with planted fraud, rings, camouflage and late labels, written as a bundle (CSV).

It never touches Neo4j: a generated bundle goes through the same import as any other.
``marketplace`` is the entry point (``generate_marketplace``); ``config`` says what to
generate, ``simulation`` runs it (``population``, ``activity``), ``tables`` lays out the
rows; ``fraud``, ``rings``, ``realism``, ``labels`` and ``text`` plant each kind of
behaviour; ``writer`` writes the CSV files.
"""
