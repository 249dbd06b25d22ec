"""cli/__init__.py: the command group and main(), which turns every failure into one line on stderr and an exit
code: 2 bad input, 1 a failed gate, 130 interrupted, 3 the unexpected; --debug lets the exception through."""
from __future__ import annotations

import os

import click
import pytest

from edge_mnist.cli import cli, main
from edge_mnist.core import progress
from edge_mnist.core.errors import GateFailed
from edge_mnist.core.progress import say
from edge_mnist.core.version import __version__
from tests.cli.test_commands import run_cli

pytestmark = pytest.mark.device

COMMANDS = {"train", "export", "bench", "check", "run", "report", "debug", "predict", "emulate", "info", "doctor"}


@pytest.fixture
def raising(monkeypatch):
    """Register a command `raise` that raises what the test names (the group is restored afterwards), and leave
    the quiet and debug settings as they were."""
    monkeypatch.setitem(progress._state, "quiet", progress._state["quiet"])
    monkeypatch.setenv("EDGE_MNIST_DEBUG", "")  # recorded, so what --debug sets is undone afterwards

    def install(make_exception):
        @click.command("raise")
        def command():
            say("about to fail")
            raise make_exception()

        monkeypatch.setitem(cli.commands, "raise", command)
    return install


def test_the_group_has_every_command_and_a_version():
    assert set(cli.commands) == COMMANDS
    code, out, _ = run_cli(["--version"])
    assert code == 0 and out == f"edge-mnist, version {__version__}\n"


def test_bad_input_is_one_line_exit_2(tmp_path):
    code, out, err = run_cli(["bench", "--out", str(tmp_path / "nope")])
    assert code == 2 and out == ""
    assert err == f"edge-mnist: error: {tmp_path / 'nope'}: artifact folder does not exist (run `edge-mnist train` " \
                  "there first, or pass --out)\n"


def test_a_usage_error_is_clicks_message_exit_2():
    code, _, err = run_cli(["bench", "--no-such-option"])
    assert code == 2 and err.splitlines()[-1] == "Error: No such option '--no-such-option'."


@pytest.mark.parametrize("exception, code, line", [
    (lambda: GateFailed("accuracy dropped 3.1 pp"), 1, "edge-mnist: check failed: accuracy dropped 3.1 pp"),
    (lambda: GateFailed("no float fallback passes", label="fallback failed"), 1,
     "edge-mnist: fallback failed: no float fallback passes"),
    (lambda: FileNotFoundError(2, "No such file or directory", "/data/x.npz"), 2,
     "edge-mnist: error: /data/x.npz: No such file or directory"),
    (lambda: KeyboardInterrupt(), 130, "edge-mnist: interrupted; files already written are intact"),
    (lambda: RuntimeError("boom\nsecond line"), 3,
     "edge-mnist: unexpected error: RuntimeError: boom (rerun with --debug for the traceback)"),
], ids=["gate", "fallback", "oserror", "interrupt", "unexpected"])
def test_each_failure_is_one_line_and_its_exit_code(raising, exception, code, line):
    raising(exception)
    got, _, err = run_cli(["raise"])
    lines = [text for text in err.splitlines() if text]  # click ends an interrupted line with a newline first
    assert (got, lines) == (code, ["about to fail", line])


def test_quiet_silences_the_stage_messages_but_not_the_error(raising):
    raising(lambda: GateFailed("drop"))
    code, _, err = run_cli(["--quiet", "raise"])
    assert (code, err) == (1, "edge-mnist: check failed: drop\n")


def test_debug_lets_the_exception_through_and_tells_the_stages(raising):
    raising(lambda: RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        main(["--debug", "raise"])
    assert os.environ["EDGE_MNIST_DEBUG"] == "1"
