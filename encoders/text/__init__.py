"""Review text to features: ``model_path`` finds the installed BERT-family model, ``int8`` holds
the quantised CPU kernels, ``encoder`` the ``ReviewEncoder``, ``cache`` the on-disk embedding
cache and ``features`` the per-user text features (mean embedding, near-duplicate counts)."""
