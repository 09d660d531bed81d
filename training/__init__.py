"""Training: heterogeneous GNN models, fitting, evaluation, calibration and ring detection."""
