"""Serving: settings, CLI, batch jobs, query helpers and the pipeline that wires the stages."""
