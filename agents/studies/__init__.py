"""The noise-sensitivity study: one module per experiment (``python -m agents study NAME``), see docs/results.md."""
