"""The training pipeline: a config's grid of runs, each trained, checkpointed, evaluated and logged.

- :mod:`~agents.pipeline.runs`: one run's spec, folder and outcome.
- :mod:`~agents.pipeline.train`: one run, resumable; :mod:`~agents.pipeline.sweep`: the grid on a backend.
- :mod:`~agents.pipeline.callbacks`, :mod:`~agents.pipeline.evaluation`, :mod:`~agents.pipeline.checkpoints`,
  :mod:`~agents.pipeline.guard` (NaN/inf): what happens during a run; :mod:`~agents.pipeline.tb_layout`:
  TensorBoard tags and charts.
- :mod:`~agents.pipeline.resume` (config check, history, event truncation) and
  :mod:`~agents.pipeline.interrupt` (Ctrl-C/SIGTERM): what keeps interrupted and resumed runs honest.
- :mod:`~agents.commands`: ``python -m agents train|sweep``.
"""
