"""txframe: Cython-accelerated, drop-in framing protocols for Twisted.

Change ``from twisted.protocols import basic`` to ``from txframe import basic``.
``txframe.implementation`` says whether the compiled framers are in use.
``txframe.install()`` builds Twisted's own protocols on txframe (see txframe.installer).
"""

from .framing import implementation
from .installer import install

__version__ = "0.1.0.dev0"
__all__ = ["implementation", "install", "__version__"]
