"""``python -m agents COMMAND ...``: one entry point for every command of the project.

Commands: ``train`` and ``sweep`` (a config's grid, then its report), ``compare`` (the report of existing runs),
``study NAME`` (one experiment of the noise-sensitivity study), ``pixelcnn-data`` and ``pixelcnn`` (collect
frames, train the density models), ``tb-means`` (per-norm mean runs for TensorBoard), ``report-docs`` (the
generated tables of docs/*.md, from the committed reports).
``python -m agents COMMAND --help`` shows each one's arguments.
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Sequence

#: command -> (module, function) it runs; imported only when chosen, so ``--help`` is quick
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("agents.commands", "main"),
    "sweep": ("agents.commands", "sweep_main"),
    "compare": ("agents.report.compare", "main"),
    "pixelcnn-data": ("agents.pixelcnn.data", "main"),
    "pixelcnn": ("agents.pixelcnn.train", "main"),
    "tb-means": ("agents.pipeline.tb_means", "main"),
    "report-docs": ("agents.report.doc_tables", "main"),
}
#: ``study NAME`` -> module of that experiment
STUDIES: dict[str, str] = {
    "aggregate": "agents.studies.aggregate",
    "batch-dependence": "agents.studies.batch_dependence",
    "bn-modes": "agents.studies.bn_modes",
    "exploration": "agents.studies.exploration",
    "head-norm": "agents.studies.head_norm",
    "minibatch": "agents.studies.minibatch",
    "offpolicy": "agents.studies.offpolicy",
    "pixelcnn": "agents.studies.pixelcnn",
}

USAGE = (
    "usage: python -m agents COMMAND [ARGS ...]\n\n"
    "commands:\n"
    "  train CONFIG [key=value ...]   train every run of a config (envs x norms x seeds), then write its report\n"
    "  sweep CONFIG [key=value ...]   the same, e.g. with --backend ray\n"
    "  compare RUNS_DIR               the report of existing runs (learning curves, IQM with intervals)\n"
    f"  study NAME CONFIG|RUNS_DIR     one experiment of the study; NAME: {', '.join(STUDIES)}\n"
    "  pixelcnn-data CONFIG           collect frames for the PixelCNN with the project's envs\n"
    "  pixelcnn CONFIG                train the PixelCNN grid of a config\n"
    "  tb-means [RUNS_DIR ...]        per-norm mean runs for TensorBoard (one line, one colour per norm)\n"
    "  report-docs [--check]          refresh the generated tables of docs/*.md from the committed reports\n\n"
    "python -m agents COMMAND --help shows a command's arguments."
)


STUDY_USAGE = (
    "usage: python -m agents study NAME [ARGS ...]\n\n"
    f"NAME: {', '.join(STUDIES)} (docs/results.md says which experiment each one is)\n"
    "python -m agents study NAME --help shows its arguments."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the chosen command.

    :param argv: ``[COMMAND, ARGS...]`` (default ``sys.argv[1:]``)
    :return: the command's exit status (2 for an unknown command)
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "study":
        if rest[:1] in (["-h"], ["--help"]):
            print(STUDY_USAGE)
            return 0
        if not rest or rest[0] not in STUDIES:
            got = repr(rest[0]) if rest else "nothing"
            print(f"error: study NAME must be one of {', '.join(STUDIES)}; got {got}", file=sys.stderr)
            return 2
        module, function, rest = STUDIES[rest[0]], "main", rest[1:]
    elif command in COMMANDS:
        module, function = COMMANDS[command]
    else:
        print(f"error: unknown command {command!r}; choose one of {', '.join([*COMMANDS, 'study'])}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the imports are done (see agents/__init__.py)
    try:
        return getattr(importlib.import_module(module), function)(rest)
    except KeyboardInterrupt:  # Ctrl-C before the command's own handling is in place
        print(f"interrupted: python -m agents {command} (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    try:
        status = main()
    finally:
        # the command's work is done (and saved), or it exits (argparse); a Ctrl-C from now on would only print a
        # traceback from Python's exit hooks (torch registers some)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)
