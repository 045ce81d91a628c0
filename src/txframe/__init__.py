"""txframe: Cython-accelerated, drop-in framing protocols for Twisted.

Change ``from twisted.protocols import basic`` to ``from txframe import basic``.
``txframe.implementation`` says whether the compiled framers are in use.
"""

from .framing import implementation

__version__ = "0.1.0.dev0"
__all__ = ["implementation", "__version__"]
