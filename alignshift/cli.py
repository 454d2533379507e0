"""How every command-line tool reports a user's mistake: one line on stderr and a non-zero exit.

A tool raises :class:`UserError` (bad data, exit 1) or :class:`UsageError` (bad arguments, exit 2)
with a message that names the file, row or field and what was expected, and runs its ``main``
through :func:`run_cli`. Anything else is a bug and keeps its traceback. ``--debug`` on the command
line, or ``ALIGNSHIFT_DEBUG=1``, shows the traceback of a user error too.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, NoReturn, Optional, Sequence

__all__ = ["ArgumentParser", "UsageError", "UserError", "debug_requested", "run_cli"]


class UserError(Exception):
    """A mistake in the user's input or environment; the message says what to do. Exit code 1."""

    exit_code = 1


class UsageError(UserError):
    """Arguments that do not fit together. Exit code 2, as argparse uses."""

    exit_code = 2


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (``prog: error: ...``), exit code 2.

    argparse prints its usage block before the error; here the error is a :class:`UsageError`
    that :func:`run_cli` reports as one line pointing to ``--help``.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("ALIGNSHIFT_DEBUG", "") not in ("", "0")


def run_cli(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None,
            prog: Optional[str] = None) -> int:
    """Run ``main(argv)``; turn a :class:`UserError` into ``prog: error: message`` and its exit code.

    Use as ``sys.exit(run_cli(main))``. ``main`` should accept (and ignore) ``--debug``.
    """
    prog = prog or os.path.basename(sys.argv[0] or "alignshift")
    try:
        return int(main(argv) or 0)
    except UserError as err:
        if debug_requested(argv):
            raise
        msg = " ".join(str(err).split("\n")) if str(err) else type(err).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
