"""The exception types every layer raises.

The core raises them with a message that names the value, the file, the row or the field and says
what was expected, never a command-line flag. ``field`` names the input the error is about (for
example ``"series"`` or ``"pretrained"``), so that a command-line tool can add the hint of its own
option for it (``alignshift.apps.cli.run_cli``), while a library user reads the message alone.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["MissingDependencyError", "UsageError", "UserError", "require"]


class UserError(Exception):
    """A mistake in the user's input, data or environment; the message says what to do.

    Args:
        message: what is wrong, naming the file, row, field or value, and what was expected.
        field: the input the error is about, for a caller that can point to its own option.

    A command-line tool reports it as one line and exits with ``exit_code`` (1).
    """

    exit_code = 1

    def __init__(self, message: str = "", *, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.field = field


class UsageError(UserError):
    """Arguments that do not fit together. Exit code 2, as argparse uses."""

    exit_code = 2


class MissingDependencyError(UserError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require(module: str, extra: str, what: str) -> None:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    Args:
        module: the importable name, e.g. ``"SimpleITK"``.
        extra: the package extra that installs it, e.g. ``"inference"``.
        what: the feature that needs it, for the message.
    """
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{what} needs {module}, which is not installed: pip install 'alignshift[{extra}]'") from None
