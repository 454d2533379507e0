"""How every command-line tool reports a user's mistake: one line on stderr and a non-zero exit.

A tool's ``main(argv)`` raises :class:`~alignshift.errors.UserError` (bad data, exit 1) or
:class:`~alignshift.errors.UsageError` (bad arguments, exit 2) and runs through :func:`run_cli`.
The core's errors name values and fields, not options; ``hints`` maps an error's ``field`` to the
tool's own option, which :func:`run_cli` appends (``--series UID`` for ``field="series"``).
Anything else is a bug and keeps its traceback. ``--debug`` on the command line, or
``ALIGNSHIFT_DEBUG=1``, shows the traceback of a user error too.

Every tool builds its parser with :class:`ArgumentParser`: argparse's errors become one line, and
``--help`` shows the defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Mapping, NoReturn, Optional, Sequence

from ..errors import UsageError, UserError

__all__ = ["ArgumentParser", "UsageError", "UserError", "add_runner_options", "debug_requested",
           "export_local_rank", "run_cli"]


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (``prog: error: ...``), exit code 2.

    argparse prints its usage block before the error; here the error is a :class:`UsageError`
    that :func:`run_cli` reports as one line pointing to ``--help``. ``--help`` shows defaults.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    """``--debug`` among the arguments, or ``ALIGNSHIFT_DEBUG`` set to anything but 0."""
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("ALIGNSHIFT_DEBUG", "") not in ("", "0")


def run_cli(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None,
            prog: Optional[str] = None, hints: Optional[Mapping[str, str]] = None) -> int:
    """Run ``main(argv)``; turn a :class:`UserError` into ``prog: error: message`` and its exit code.

    Args:
        main: the tool; it should accept (and ignore) ``--debug``.
        argv: the arguments (default ``sys.argv[1:]``).
        prog: the name in the message (default the script's name).
        hints: ``{field: text}`` appended to the message of an error about that field, e.g.
            ``{"series": "choose one with --series UID"}``.

    Returns:
        The exit code: 0, the error's ``exit_code``, or 130 on Ctrl-C. Use as
        ``sys.exit(run_cli(main))``.
    """
    prog = prog or os.path.basename(sys.argv[0] or "alignshift")
    try:
        return int(main(argv) or 0)
    except UserError as err:
        if debug_requested(argv):
            raise
        msg = " ".join(str(err).split("\n")) if str(err) else type(err).__name__
        hint = (hints or {}).get(getattr(err, "field", None) or "")
        if hint:
            msg = f"{msg.rstrip('.')}; {hint}"
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def add_runner_options(p: argparse.ArgumentParser) -> None:
    """The options mmdet's train and test tools share: ``--cfg-options``, ``--launcher``, ...

    Imports MMEngine (its ``DictAction`` parses ``--cfg-options``): call it from tools that run a
    detector only.
    """
    from mmengine.config import DictAction

    p.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                   help="override config settings, e.g. train_cfg.max_epochs=2")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                   help="job launcher")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")


def export_local_rank(args: argparse.Namespace) -> None:
    """``LOCAL_RANK`` for the launcher, from ``--local-rank`` unless torchrun set it."""
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
