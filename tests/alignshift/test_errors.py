"""alignshift.errors and the command-line convention of alignshift.apps.cli."""

import pytest

from alignshift.apps.cli import ArgumentParser, run_cli
from alignshift.errors import MissingDependencyError, UsageError, UserError, require


def test_core_error_names_its_field_and_the_tool_adds_its_option(capsys):
    def main(argv):
        raise UserError("folder x holds 2 DICOM series; choose one by its SeriesInstanceUID: a; b",
                        field="series")

    assert run_cli(main, [], prog="tool.py", hints={"series": "choose one with --series UID"}) == 1
    err = capsys.readouterr().err
    assert err == ("tool.py: error: folder x holds 2 DICOM series; choose one by its SeriesInstanceUID: "
                   "a; b; choose one with --series UID\n")
    assert run_cli(main, [], prog="tool.py") == 1  # no hint for the field: the message alone
    assert "--series" not in capsys.readouterr().err


def test_usage_errors_are_one_line_with_exit_2(capsys):
    def main(argv):
        p = ArgumentParser(prog="tool.py")
        p.add_argument("--n", type=int, default=3, help="a number")
        p.parse_args(argv)

    assert run_cli(main, ["--n", "x"], prog="tool.py") == 2
    err = capsys.readouterr().err
    assert err.startswith("tool.py: error: argument --n: invalid int value") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "(default: 3)" in capsys.readouterr().out  # --help shows the defaults
    assert issubclass(UsageError, UserError) and UsageError.exit_code == 2


def test_a_missing_extra_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"reading x needs no_such_module_xyz, which is not "
                       r"installed: pip install 'alignshift\[inference\]'"):
        require("no_such_module_xyz", "inference", "reading x")
    assert issubclass(MissingDependencyError, ImportError)
    require("numpy", "inference", "anything")  # installed: nothing happens
