"""Drop-in replacement for :mod:`twisted.protocols.ident` (RFC 1413), on bytes.

Twisted's ident server and client split and format ``str`` and so fail on every
real connection under Python 3 (twisted #11868), and its ``ProcServerMixin`` reads
only ``/proc/net/tcp``. These keep Twisted's names, hooks and signatures:

- :class:`IdentServer` answers ``<port-on-server> , <port-on-client>`` queries
  (several per connection) with ``self.lookup(serverAddress, clientAddress)``, which
  returns ``(opsys, user-id)``, raises an :class:`IdentError` or returns a Deferred.
  Replies leave in query order. A malformed query gets ``ERROR : INVALID-PORT``, as
  RFC 1413 asks (Twisted closes the connection: set ``closeOnInvalidQuery``);
- :class:`ProcServerMixin` looks connections up in ``/proc/net/tcp`` and
  ``/proc/net/tcp6``, matching both addresses and both ports;
- :class:`IdentClient` queues queries and fires each one's Deferred with
  ``(type, info)`` or fails it with the :class:`IdentError` its reply names.

The exceptions subclass Twisted's, so code catching those catches these, and a
lookup may raise either.
"""

from __future__ import annotations

import codecs
import os
import re
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.protocols import ident as _twisted, policies
from twisted.python.failure import Failure

from . import _reexport, basic, procnet
from ._replies import Replies

try:
    import pwd
except ImportError:  # Windows: no user database; ProcServerMixin is for Linux
    pwd = None  # type: ignore[assignment]

# txframe's names, then every other public name of Twisted's module: a star import
# binds what Twisted's does
__all__ = _reexport.exported(_twisted, [
    "HiddenUser",
    "IdentClient",
    "IdentError",
    "IdentServer",
    "InvalidPort",
    "NoUser",
    "ProcServerMixin",
])


def __getattr__(name: str) -> Any:
    """Every other public name of :mod:`twisted.protocols.ident`, as Twisted's object."""
    return _reexport.attribute(_twisted, name, __name__)


_log = Logger()

#: The longest query or reply line accepted, without its end of line.
MAX_LINE = 1000
#: RFC 1413's limit on a user-id.
MAX_USER_ID = 512


class IdentError(_twisted.IdentError):
    """Can't determine connection owner; reason unknown (``UNKNOWN-ERROR``).

    ``str()`` of one is its error token, ``identDescription``. Raise a subclass
    with an ``identDescription`` of your own, ``X`` and up to 63 more characters
    (``X-BANNED``), for a non-standard error; :class:`IdentClient` fails a query
    answered with one with an :class:`IdentError` whose ``identDescription`` is the
    token.
    """


class NoUser(IdentError, _twisted.NoUser):
    """No connection with that port pair, or no identifiable owner (``NO-USER``)."""


class InvalidPort(IdentError, _twisted.InvalidPort):
    """A port was out of range (1-65535) or not a number (``INVALID-PORT``)."""


class HiddenUser(IdentError, _twisted.HiddenUser):
    """The owner asked not to be identified (``HIDDEN-USER``)."""


_ERRORS = {e.identDescription: e for e in (IdentError, NoUser, InvalidPort, HiddenUser)}

# -- the rules ---------------------------------------------------------------------------

_PORT = re.compile(rb"[ \t]*([0-9]{1,5})[ \t]*\Z")
_NUMBER = re.compile(rb"[ \t]*[-+]?[0-9]+[ \t]*\Z")  # what int() takes, near enough
_ECHO = re.compile(rb"[!-+\--9;-~]{1,16}\Z")  # printable, no space, ',' or ':'
_TOKEN = re.compile(r"[!-+\--9;-~]{1,64}\Z")  # an opsys, charset or error token
_X_TOKEN = re.compile(r"X[!-+\--9;-~]{1,63}\Z")


class _BadQuery(Exception):
    """A query that names no valid port pair. ``echo``: the port pair for the
    ``INVALID-PORT`` reply; ``malformed``: not even numbers (Twisted's
    ``invalidQuery``)."""

    def __init__(self, echo: bytes, malformed: bool) -> None:
        self.echo = echo
        self.malformed = malformed


def parse_query(line: bytes) -> tuple[int, int]:
    """``(port_on_server, port_on_client)`` from a query line (no end of line);
    :class:`_BadQuery` unless both are decimal numbers of 1 to 65,535 (with spaces or
    tabs around them allowed)."""
    parts = line.split(b",")
    if len(parts) == 2:
        server, client = _PORT.match(parts[0]), _PORT.match(parts[1])
        if server and client:
            ports = int(server.group(1)), int(client.group(1))
            if 0 < ports[0] < 65536 and 0 < ports[1] < 65536:
                return ports
    else:
        raise _BadQuery(b"0, 0", True)
    numbers = bool(_NUMBER.match(parts[0]) and _NUMBER.match(parts[1]))
    # Echo what the client sent where that cannot confuse a reply's syntax.
    echo = [p.strip() if _ECHO.match(p.strip()) else b"0" for p in parts]
    raise _BadQuery(echo[0] + b", " + echo[1], not numbers)


def _text(value: Any, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise TypeError(f"the {what} is {type(value).__name__}, not str or bytes")


def userid_reply(ports: bytes, opsys: Any, user: Any) -> bytes:
    """``<ports> : USERID : <opsys> : <user>``. Text is sent as UTF-8, and a
    non-ASCII user-id gets the charset ``UTF-8`` unless *opsys* names one. ValueError
    or TypeError for what RFC 1413 forbids: an opsys or charset that is not a token,
    a user-id with NUL, CR or LF or longer than 512 bytes."""
    system = opsys.decode("ascii") if isinstance(opsys, bytes) else opsys
    if not isinstance(system, str):
        raise TypeError(f"the opsys is {type(opsys).__name__}, not str or bytes")
    user_id = _text(user, "user-id")
    if not all(_TOKEN.match(token) for token in system.split(",", 1)):
        raise ValueError(f"{system!r} is not an opsys[,charset] token")
    if b"\0" in user_id or b"\r" in user_id or b"\n" in user_id:
        raise ValueError(f"the user-id {user_id!r} has NUL, CR or LF")
    if not user_id or len(user_id) > MAX_USER_ID:
        raise ValueError(f"the user-id has {len(user_id)} bytes (1 to {MAX_USER_ID})")
    if "," not in system and not user_id.isascii():
        system += ",UTF-8"
    return b"%s : USERID : %s : %s\r\n" % (ports, system.encode("ascii"), user_id)


def error_token(error: BaseException) -> str:
    """The error token an exception asks for: one of RFC 1413's four, or a
    non-standard ``X...`` token; ``UNKNOWN-ERROR`` for anything else."""
    token = getattr(error, "identDescription", None)
    if isinstance(token, str) and (token in _ERRORS or _X_TOKEN.match(token)):
        return token
    return IdentError.identDescription


def error_reply(ports: bytes, token: str) -> bytes:
    """``<ports> : ERROR : <token>``."""
    return b"%s : ERROR : %s\r\n" % (ports, token.encode("ascii"))


def _ports(server: int, client: int) -> bytes:
    return b"%d, %d" % (server, client)


# -- server ------------------------------------------------------------------------------


class IdentServer(Replies, basic.LineOnlyReceiver, policies.TimeoutMixin):
    """RFC 1413's server. Override :meth:`lookup` (or mix in
    :class:`ProcServerMixin`); the default answers ``UNKNOWN-ERROR``.

    Queries end with CR LF or LF; several may come on one connection, and may be
    pipelined: replies leave in query order. A line longer than 1,000 bytes closes the connection once the replies before it are sent. The connection
    is closed after ``timeout`` seconds without a query (RFC 1413 recommends 60-180;
    None: never).
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE + 1  # and a CR
    timeout: float | None = 120
    #: Close the connection on a malformed query, as Twisted's server does, instead
    #: of answering it ``INVALID-PORT``.
    closeOnInvalidQuery = False

    _invalid = b"0, 0"

    def sendLine(self, line: bytes) -> None:
        """Send *line* and CR LF, after any replies still outstanding."""
        self._send(line + b"\r\n")

    def lineReceived(self, line: bytes) -> None:
        if self._closing:
            return
        if self.timeOut is not None:
            self.resetTimeout()
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > MAX_LINE:
            self.lineLengthExceeded(line)
            return
        try:
            portOnServer, portOnClient = parse_query(line)
        except _BadQuery as bad:
            if bad.malformed:
                self._invalid = bad.echo
                self.invalidQuery()
            else:  # numbers, but not ports: as Twisted does
                self._send(error_reply(bad.echo, InvalidPort.identDescription))
            return
        self.validQuery(portOnServer, portOnClient)

    def invalidQuery(self) -> None:
        """A query that is not two numbers: ``INVALID-PORT`` (RFC 1413), with the
        port pair echoed where it is printable; or, with ``closeOnInvalidQuery``,
        the connection is closed (once earlier replies are sent) as Twisted does."""
        if self.closeOnInvalidQuery:
            self._closeWhenDone()
        else:
            self._send(error_reply(self._invalid, InvalidPort.identDescription))

    def validQuery(self, portOnServer: int, portOnClient: int) -> None:
        """Look up the connection from *portOnServer* on this host to *portOnClient*
        on the querying host, and answer."""
        serverAddress = (self.transport.getHost().host, portOnServer)
        clientAddress = (self.transport.getPeer().host, portOnClient)
        self._answer(self.lookup, (serverAddress, clientAddress), portOnServer, portOnClient)

    def lookup(self, serverAddress: tuple[str, int], clientAddress: tuple[str, int]) -> Any:
        """Who owns the connection from *serverAddress* (this host, ``(host, port)``)
        to *clientAddress* (the querying host)? Return ``(opsys, user-id)`` (str or
        bytes; the opsys may carry a charset, ``"UNIX,UTF-8"``), raise an
        :class:`IdentError`, or return a Deferred of either."""
        raise IdentError()

    def lineLengthExceeded(self, line: bytes) -> None:
        """A line over 1,000 bytes: close once the earlier replies are sent."""
        if self._closing:
            return
        _log.warn("ident: a query line longer than {limit} bytes", limit=MAX_LINE)
        self._closeWhenDone()

    # -- replies ---------------------------------------------------------------------

    def _found(self, result: Any, portOnServer: int, portOnClient: int) -> bytes:
        ports = _ports(portOnServer, portOnClient)
        try:
            opsys, user = result
            return userid_reply(ports, opsys, user)
        except (TypeError, ValueError) as e:
            _log.error(
                "ident lookup of {ports}: cannot send {result!r}: {why}",
                ports=ports.decode(),
                result=result,
                why=str(e),
            )
            return error_reply(ports, IdentError.identDescription)

    def _failed(self, failure: Failure, portOnServer: int, portOnClient: int) -> bytes:
        if not failure.check(_twisted.IdentError):
            _log.failure(
                "ident lookup of {server}, {client} failed",
                failure,
                LogLevel.error,
                server=portOnServer,
                client=portOnClient,
            )
        return error_reply(_ports(portOnServer, portOnClient), error_token(failure.value or IdentError()))

    def _errorReply(self, reason: Any, portOnServer: int, portOnClient: int) -> bytes:
        return error_reply(_ports(portOnServer, portOnClient), IdentError.identDescription)


class ProcServerMixin:
    """``lookup`` from Linux's socket tables, ``/proc/net/tcp`` and
    ``/proc/net/tcp6``: the connection whose local and remote addresses and ports are
    the queried ones (IPv4-mapped IPv6 addresses match their IPv4 form). Its owner's
    name is the user-id (their uid, as a number, if they have no name); a user with a
    file ``~/.noident`` is ``HIDDEN-USER``; no match (or a connection no socket holds
    any more) is ``NO-USER``. Mix it in before :class:`IdentServer`."""

    SYSTEM_NAME = "LINUX"
    #: The file in a user's home directory that hides them.
    noidentFile = ".noident"

    def getUsername(self, uid: int) -> str:
        """The name of the user *uid*, or the uid as text if it has none."""
        try:
            return pwd.getpwuid(uid).pw_name
        except (KeyError, AttributeError):  # no such user; no pwd module
            return str(uid)

    def homeDirectory(self, uid: int) -> str | None:
        """The home directory of the user *uid*, if it has one."""
        try:
            return pwd.getpwuid(uid).pw_dir
        except (KeyError, AttributeError):
            return None

    def isHidden(self, uid: int) -> bool:
        """Did the user *uid* opt out (a ``~/.noident`` file)?"""
        home = self.homeDirectory(uid)
        if not home:
            return False
        return os.path.lexists(os.path.join(home, self.noidentFile))

    def entries(self) -> Any:
        """The lines of the socket tables (without their headers)."""
        return procnet.read_entries()

    def dottedQuadFromHexString(self, hexstr: str) -> str:
        """An IPv4 address as ``/proc/net/tcp`` writes it, as a dotted quad."""
        return procnet.host_from_hex(hexstr)

    def unpackAddress(self, packed: str) -> tuple[str, int]:
        """``HEXHOST:HEXPORT`` (IPv4 or IPv6) as ``(host, port)``."""
        host, port = packed.split(":")
        if len(host) == 8:
            return self.dottedQuadFromHexString(host), int(port, 16)
        return procnet.unpack_address(packed)

    def parseLine(self, line: str) -> tuple[tuple[str, int], tuple[str, int], int]:
        """``((localHost, localPort), (remoteHost, remotePort), uid)`` of a table line."""
        parts = line.split()
        return self.unpackAddress(parts[1]), self.unpackAddress(parts[2]), int(parts[7])

    def lookup(self, serverAddress: tuple[str, int], clientAddress: tuple[str, int]) -> Any:
        # Lines are parsed by parseLine if a subclass changed how (or how it reads
        # addresses, as Twisted's parseLine calls them); else the fast way.
        parse = None
        cls = type(self)
        for name in ("parseLine", "unpackAddress", "dottedQuadFromHexString"):
            if getattr(cls, name) is not getattr(ProcServerMixin, name):
                parse = self.parseLine
        uid = procnet.find_owner(serverAddress, clientAddress, self.entries(), parse)
        if uid is None:
            raise NoUser()
        if self.isHidden(uid):
            raise HiddenUser()
        return (self.SYSTEM_NAME, self.getUsername(uid))


# -- client ------------------------------------------------------------------------------


class IdentClient(basic.LineOnlyReceiver):
    """RFC 1413's client. :meth:`lookup` returns a Deferred that fires with
    ``(type, info)`` (``("USERID", "UNIX : alice")``) or fails with the
    :class:`IdentError` subclass the server's error names. Queries are sent one at a
    time, in order; those outstanding when the connection is lost fail with an
    :class:`IdentError`."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE + 1  # and a CR
    errorTypes = (IdentError, NoUser, InvalidPort, HiddenUser)

    _lost = False

    def __init__(self) -> None:
        #: ``(deferred, portOnServer, portOnClient)`` of each query not yet answered.
        self.queries: list[tuple[defer.Deferred[Any], int, int]] = []

    def sendLine(self, line: bytes) -> None:
        """Send *line* and CR LF."""
        self.transport.write(line + b"\r\n")  # type: ignore[union-attr]

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.queries:  # asked before the connection was made
            self._ask()

    def lookup(self, portOnServer: int, portOnClient: int) -> defer.Deferred[Any]:
        """Who owns the connection from *portOnClient* on this host to
        *portOnServer* on the server's host?"""
        if not all(type(p) is int and 0 < p < 65536 for p in (portOnServer, portOnClient)):
            return defer.fail(InvalidPort(f"{portOnServer!r}, {portOnClient!r}"))
        if self._lost:
            return defer.fail(IdentError("the connection was lost"))
        d: defer.Deferred[Any] = defer.Deferred()
        self.queries.append((d, portOnServer, portOnClient))
        if len(self.queries) == 1 and self.transport is not None:
            self._ask()
        return d

    def _ask(self) -> None:
        _, server, client = self.queries[0]
        self.sendLine(_ports(server, client))

    def lineReceived(self, line: bytes) -> None:
        if isinstance(line, str):  # as Twisted's tests feed it
            line = line.encode("utf-8", "surrogateescape")
        if line.endswith(b"\r"):
            line = line[:-1]
        if not self.queries:
            _log.warn("ident: unexpected reply {line!r}", line=line)
            return
        d, server, client = self.queries.pop(0)
        if self.queries:
            self._ask()
        if _answers(line, server, client):
            self.parseResponse(d, line)
        else:  # malformed, or about other ports
            d.errback(IdentError(line.decode("utf-8", "surrogateescape")))

    def lineLengthExceeded(self, line: bytes) -> None:
        """A reply over ``MAX_LENGTH``: the connection is closed (and the
        outstanding queries fail)."""
        self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Any = None) -> None:
        self._lost = True
        queries, self.queries = self.queries, []
        for d, _, _ in queries:
            d.errback(IdentError(reason))

    def parseResponse(self, deferred: defer.Deferred[Any], line: bytes) -> None:
        """Fire *deferred* with the reply *line*: ``(type, info)``, or an
        :class:`IdentError` for an ``ERROR`` reply (its subclass for RFC 1413's four
        tokens) or a malformed one."""
        if isinstance(line, str):  # as Twisted's takes it
            line = line.encode("utf-8", "surrogateescape")
        text = line.decode("utf-8", "surrogateescape")
        parts = line.split(b":", 2)
        if len(parts) != 3:
            deferred.errback(IdentError(text))
            return
        _, kind, info = (part.strip() for part in parts)
        kind_text = kind.decode("ascii", "replace")
        if kind_text == "ERROR":
            token = info.decode("ascii", "replace")
            for errorType in self.errorTypes:
                if errorType.identDescription == token:
                    deferred.errback(errorType(text))
                    return
            error = IdentError(text)
            error.identDescription = token
            deferred.errback(error)
        else:
            deferred.callback((kind_text, _decode_info(info)))


def _answers(line: bytes, server: int, client: int) -> bool:
    """Is *line* a reply about the port pair *server*, *client*?"""
    pair = line.split(b":", 1)[0].split(b",")
    return (
        len(pair) == 2
        and all(p.strip().isdigit() for p in pair)
        and (int(pair[0]), int(pair[1])) == (server, client)
    )


def _decode_info(info: bytes) -> str:
    """A USERID reply's ``<opsys>[,<charset>] : <user-id>`` as text: the opsys as
    ASCII, the user-id in its charset if Python has a text codec of that name, else
    UTF-8 (of which RFC 1413's default, US-ASCII, is a part); bytes that do not
    decode are kept as surrogate escapes."""
    opsys, colon, user_id = info.partition(b":")
    charset = "utf-8"
    if b"," in opsys:
        named = opsys.split(b",", 1)[1].strip().decode("ascii", "replace")
        try:
            codec = codecs.lookup(named)
            if getattr(codec, "_is_text_encoding", True) and not codec.name.startswith(("utf-16", "utf-32")):
                charset = codec.name
        except LookupError:
            pass
    name = user_id.lstrip(b" \t")
    space = user_id[: len(user_id) - len(name)].decode("ascii")
    try:
        user = name.decode(charset, "surrogateescape")
    except UnicodeError:  # a codec that cannot take what it was given
        user = name.decode("utf-8", "surrogateescape")
    return opsys.decode("ascii", "surrogateescape") + colon.decode() + space + user
