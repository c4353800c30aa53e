"""Which features need the ``local`` extra, and the one line a user sees when it is not installed.

``pip install filepipe`` carries the component library, the policy rules and the ops commands. The
embedded AWS (moto with its Flask server) and the packages the handler needs to run in-process are the
``local`` extra: ``filepipe local`` and the ``filepipe.testing`` fixtures check for them first, so a
missing extra is a sentence, not an ``ImportError`` from deep inside moto.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Final

LOCAL_EXTRA: Final = "local"
LOCAL_EXTRA_MODULES: Final = ("moto", "flask", "aws_lambda_powertools", "fastjsonschema", "backports.zstd")
"""The import names of what ``filepipe[local]`` installs (pyproject.toml's ``local`` list)."""


class MissingExtraError(RuntimeError):
    """A feature was used without the extra that installs what it needs."""


def _installed(module: str) -> bool:
    # A module set to None in sys.modules is one Python refuses to import (how tests hide a package).
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def missing_local_modules() -> list[str]:
    return [module for module in LOCAL_EXTRA_MODULES if not _installed(module)]


def needs_local_extra(feature: str) -> str:
    """The one line that says how to get ``feature``."""
    return f"`{feature}` needs `pip install 'filepipe[{LOCAL_EXTRA}]'`"


def require_local_extra(feature: str) -> None:
    """Raise :class:`MissingExtraError` (the one line) unless every ``local`` package is importable."""
    if missing_local_modules():
        raise MissingExtraError(needs_local_extra(feature))
