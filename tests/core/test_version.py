"""version.py: the one version, the installed package's and the one every artifact is stamped with."""
from importlib import metadata

import pytest

from edge_mnist.core.version import __version__

pytestmark = pytest.mark.device


def test_the_version_is_the_installed_packages():
    assert __version__ == metadata.version("edge-mnist")
