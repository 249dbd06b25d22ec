"""Exceptions the CLI turns into one-line messages and exit codes."""


class EdgeMnistError(Exception):
    """Bad input or usage: a missing/corrupt file, wrong shapes, NaN. The CLI exits 2."""

    exit_code = 2


class GateFailed(Exception):
    """An accuracy criterion of `check` failed (or no float fallback passes it). The CLI exits 1."""

    exit_code = 1

    def __init__(self, message: str, label: str = "check failed"):
        """`label` leads the CLI's one-line message ("check failed", "fallback failed")."""
        super().__init__(message)
        self.label = label


class MissingDependency(EdgeMnistError):
    """A command needs an optional extra (e.g. TensorFlow) that is not installed."""


def require(module: str, extra: str):
    """Import an optional dependency or raise a one-line error naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{module} is not installed ({exc}); install the '{extra}' extra: pip install 'edge-mnist[{extra}]'"
        ) from exc
