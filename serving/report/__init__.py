"""What risk ops read: the terminal metrics tables (``tables``) and the HTML run report.

``tables`` is what ``train``, ``backtest`` and the demo print; the HTML report (``riskgraph
report``) is built by ``page`` from the run data that ``snapshot`` saves at train and score
time. Only ``tables`` is imported here, so the CLI's metric printing does not load matplotlib.
"""

from serving.report.tables import LABEL_SETS, metrics_table, print_guard

__all__ = ["LABEL_SETS", "metrics_table", "print_guard"]
