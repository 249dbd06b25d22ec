"""The `edge-mnist` command line: a thin click layer over the library.

Options are parsed here (options.py), the work is done by the stage functions, and results are
printed here (commands.py, render.console). Heavy imports (TensorFlow, tf2onnx, tfmot) happen inside
the stages that need them, so bench, check and predict run on a device with only the runtime
installed. Every expected failure is one line on stderr with exit code 2 (bad input) or 1 (gate
failed); --debug shows the traceback.
"""
from __future__ import annotations

import os
import sys

import click

from edge_mnist.cli import commands
from edge_mnist.core.errors import EdgeMnistError, GateFailed
from edge_mnist.core.progress import set_quiet


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's own logging.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or stage messages on stderr; results and "
                                                  "errors are still printed.")
@click.version_option(package_name="edge-mnist")
def cli(debug, quiet):
    """Train, int8-quantize, export, benchmark and gate the reference MNIST CNN for edge devices.

    Progress goes to stderr: bars with rate and ETA on a terminal, a plain line every few seconds
    in a log."""
    set_quiet(quiet)
    if debug:
        os.environ["EDGE_MNIST_DEBUG"] = "1"


for _command in (commands.train_cmd, commands.export_cmd, commands.bench_cmd, commands.check_cmd, commands.run_cmd,
                 commands.report_cmd, commands.debug_cmd, commands.predict_cmd, commands.emulate_cmd,
                 commands.info_cmd, commands.doctor_cmd):
    cli.add_command(_command)


def main(argv=None) -> None:
    """Console entry point: maps expected errors to one line and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="edge-mnist", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("edge-mnist: interrupted; files already written are intact", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except (EdgeMnistError, GateFailed) as exc:
        if debug:
            raise
        click.echo(f"edge-mnist: {exc.label if isinstance(exc, GateFailed) else 'error'}: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # the environment: a full disk, a permission, a missing folder
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"edge-mnist: error: {where}{exc.strerror or exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # the last line of defence: one line, never a traceback, unless --debug
        if debug:
            raise
        click.echo(f"edge-mnist: unexpected error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                   " (rerun with --debug for the traceback)", err=True)
        sys.exit(3)

