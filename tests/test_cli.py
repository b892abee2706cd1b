"""The command line: version, help, and exit codes for bad usage."""

import subprocess
import sys

from mrdflow import __version__
from mrdflow.cli import main


def test_version_flag_prints_package_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_no_subcommand_prints_help_and_exit_code_2(capsys):
    assert main([]) == 2
    assert "usage: mrdflow" in capsys.readouterr().out


def test_unknown_subcommand_is_a_usage_error():
    assert main(["no-such-command"]) == 2


def test_python_dash_m_runs_the_same_cli():
    out = subprocess.run([sys.executable, "-m", "mrdflow", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "mrdflow" in out.stdout
