"""txframe.ftp's classes bound to one implementation of the LIST formatter.

Shared by conftest.py's ``impl`` fixture, the copies of Twisted's FTP suite
(test_ftp_twisted_suite.py) and the FTP server peer (peers/ftp_server.py).
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace

from twisted.python import filepath

from txframe import ftp


def bind_ftp(listing: ModuleType) -> SimpleNamespace:
    """``DTP``, ``DTPFactory``, ``FTP`` and ``FTPFactory`` subclasses of txframe.ftp's
    whose LIST lines come from *listing* (``txframe._listing_c`` or ``_listing_py``),
    and that module's ``ListFormatter`` and the bound ``formatter``."""
    formatter = listing.ListFormatter(filepath.Permissions, filepath.RWX)
    dtp = type("DTP", (ftp.DTP,), {"_formatter": formatter})
    dtp_factory = type("DTPFactory", (ftp.DTPFactory,), {"protocol": dtp})
    server = type("FTP", (ftp.FTP,), {"dtpFactoryClass": dtp_factory})
    server_factory = type("FTPFactory", (ftp.FTPFactory,), {"protocol": server})
    return SimpleNamespace(
        ListFormatter=listing.ListFormatter,
        formatter=formatter,
        DTP=dtp,
        DTPFactory=dtp_factory,
        FTP=server,
        FTPFactory=server_factory,
    )
