"""The synthetic marketplace: users, merchants, products, devices, orders, reviews and logins,
with planted fraud, rings, camouflage and late labels, written as a bundle (CSV).

It never touches Neo4j: a generated bundle goes through the same import as any other.
``marketplace`` drives the simulation; ``fraud``, ``rings``, ``realism``, ``labels`` and
``text`` plant each kind of behaviour; ``writer`` writes the tables.
"""
