"""Reports read back from TensorBoard event files: statistics with intervals, tables, plots, ``compare``."""
