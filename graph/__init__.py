"""Graph: schema, bundle validation, Neo4j access, import/export and the synthetic marketplace."""
