"""Imported at start-up by the Python processes that `txframe run` started (this
directory is on their PYTHONPATH): run the ``sitecustomize`` this one hides, if any,
then install txframe, before the program imports Twisted's protocols."""

import importlib.machinery
import importlib.util
import os
import sys


def _run_hidden() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_run_hidden()
if os.environ.get("TXFRAME_INSTALL", "") not in ("", "0"):
    from txframe.installer import install

    install()
