"""Synthetic e-commerce marketplace with planted fraud, written as a bundle of CSV tables.

The output follows /work/shared/bundle-format.md so generated data goes through the same
import path as a customer's export. Everything is vectorised with numpy and driven by one
``numpy.random.default_rng(seed)``, so the same config gives byte-identical files.
The config is in ``graph.synth.config``; ``graph.synth.simulation`` runs the behaviours
(``population``: users, market, devices, logins; ``activity``: orders and reviews) and
``graph.synth.tables`` writes them. Fraud typologies live in ``graph.synth.fraud`` (rings that hide their devices in
``graph.synth.rings``), fraud recency, label maturity and camouflage in
``graph.synth.realism``, review text in ``graph.synth.text``, labels in
``graph.synth.labels``, CSV formatting in ``graph.synth.writer``.
"""

from __future__ import annotations

from pathlib import Path

from graph.synth.config import GenerationSummary, GeneratorConfig, check_config
from graph.synth.fraud import LEGIT
from graph.synth.simulation import simulate
from graph.synth.tables import tables, write_tables

__all__ = ["GenerationSummary", "GeneratorConfig", "generate_marketplace"]


def generate_marketplace(config: GeneratorConfig, out_dir: Path) -> GenerationSummary:
    """Generate a marketplace with planted fraud and write it as a bundle into ``out_dir``.

    Besides the bundle tables, writes ``truth.csv`` (every user, unflipped fraud/default and
    the planted ``typology``) for evaluation; it is not part of the bundle contract and
    importers ignore it.
    """
    check_config(config)
    sim = simulate(config)
    counts = write_tables(tables(sim, config), out_dir)
    n_rings = sim.plan.n_rings
    return GenerationSummary(
        out_dir, counts, int((sim.plan.role != LEGIT).sum()), int(sim.default.sum()), n_rings
    )
