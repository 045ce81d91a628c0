"""FTP client scenarios with Python's ftplib, in their own process.

Usage::

    python ftp_client.py PORT ACTION [options]

Logs in anonymously to 127.0.0.1:PORT, runs one *ACTION* and prints one JSON object:
the server's replies (``replies``: the final reply of the transfer, then those of the
commands that follow to show the control connection still works), plus what the
action measured. Actions:

``list [--path P] --out FILE``
    LIST, the raw bytes of the listing written to FILE.
``retr NAME --out FILE [--pause S]``
    RETR in binary mode to FILE (reading nothing for S seconds first); ``sha256``
    and ``size`` of what arrived.
``stor NAME --src FILE``
    STOR FILE in binary mode.
``abort-retr NAME --after N``
    RETR, read N bytes, close the data connection (a reset: data is unread), then NOOP.
``abort-stor NAME --src FILE --after N [--reset]``
    STOR, send N bytes of FILE, close the data connection (``--reset``: with
    SO_LINGER 0, a reset instead of an orderly close), then NOOP.
``early-send NAME --src FILE``
    PASV, connect to the data port and send FILE *before* sending STOR: without
    blocking, until the server stops taking data for ``--stall`` seconds (its
    backpressure) or FILE is all sent (``sent_before_command``); then STOR, the rest,
    close. ``sha256`` of FILE for comparison.
``slow-list [--path P] --pause S --out FILE``
    LIST, but read nothing from the data connection for S seconds first.

``--active`` uses PORT (the server connects to us) instead of PASV. Replies are text
(``latin-1``); ``error`` holds a traceback if something failed.
"""

from __future__ import annotations

import argparse
import ftplib
import hashlib
import json
import socket
import struct
import sys
import time
import traceback
from typing import Any

HOST = "127.0.0.1"
TIMEOUT = 60.0
BLOCK = 65536


def login(port: int, active: bool) -> ftplib.FTP:
    ftp = ftplib.FTP(encoding="latin-1", timeout=TIMEOUT)
    ftp.connect(HOST, port)
    ftp.login()
    ftp.set_pasv(not active)
    return ftp


def after(ftp: ftplib.FTP, replies: list[str]) -> None:
    """The commands that show the control connection still works."""
    replies.append(ftp.sendcmd("NOOP"))
    replies.append(ftp.sendcmd("PWD"))


def act(args: argparse.Namespace) -> dict[str, Any]:
    ftp = login(args.port, args.active)
    replies: list[str] = []
    result: dict[str, Any] = {"replies": replies}
    ftp.voidcmd("TYPE I")
    if args.action in ("list", "slow-list"):
        command = "LIST" + (f" {args.path}" if args.path else "")
        with ftp.transfercmd(command) as conn:
            if args.action == "slow-list":
                time.sleep(args.pause)
            data = read_all(conn)
        replies.append(ftp.voidresp())
        with open(args.out, "wb") as f:
            f.write(data)
        result["size"] = len(data)
    elif args.action == "retr":
        digest = hashlib.sha256()
        size = 0
        with open(args.out, "wb") as f, ftp.transfercmd(f"RETR {args.name}") as conn:
            time.sleep(args.pause)
            while chunk := conn.recv(BLOCK):
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        replies.append(ftp.voidresp())
        result.update(sha256=digest.hexdigest(), size=size)
    elif args.action == "stor":
        with open(args.src, "rb") as f:
            replies.append(ftp.storbinary(f"STOR {args.name}", f, BLOCK))
    elif args.action == "abort-retr":
        conn = ftp.transfercmd(f"RETR {args.name}")
        received = 0
        while received < args.after:
            chunk = conn.recv(min(BLOCK, args.after - received))
            if not chunk:
                break
            received += len(chunk)
        conn.close()
        replies.append(read_reply(ftp))
        result["received"] = received
    elif args.action == "abort-stor":
        conn = ftp.transfercmd(f"STOR {args.name}")
        with open(args.src, "rb") as f:
            conn.sendall(f.read(args.after))
        if args.reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        replies.append(read_reply(ftp))
    elif args.action == "early-send":
        early_send(ftp, args, result)
    else:
        raise ValueError(args.action)
    after(ftp, replies)
    ftp.quit()
    return result


def read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(BLOCK):
        chunks.append(chunk)
    return b"".join(chunks)


def read_reply(ftp: ftplib.FTP) -> str:
    """The next reply, whatever its code (ftplib raises on 4xx/5xx)."""
    return ftp.getmultiline()


def early_send(ftp: ftplib.FTP, args: argparse.Namespace, result: dict[str, Any]) -> None:
    with open(args.src, "rb") as f:
        data = f.read()
    host, port = ftp.makepasv()
    conn = socket.create_connection((host, port), timeout=TIMEOUT)
    conn.setblocking(False)
    sent = 0
    last_progress = time.monotonic()
    view = memoryview(data)
    while sent < len(data) and time.monotonic() - last_progress < args.stall:
        try:
            n = conn.send(view[sent:sent + BLOCK])
        except BlockingIOError:
            time.sleep(0.01)
            continue
        sent += n
        last_progress = time.monotonic()
    result["sent_before_command"] = sent
    conn.setblocking(True)
    conn.settimeout(TIMEOUT)
    ftp.putcmd(f"STOR {args.name}")
    result["replies"].append(read_reply(ftp))  # 125: transfer starting
    conn.sendall(view[sent:])
    conn.close()
    result["replies"].append(read_reply(ftp))
    result["sha256"] = hashlib.sha256(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("action")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--active", action="store_true")
    parser.add_argument("--path")
    parser.add_argument("--out")
    parser.add_argument("--src")
    parser.add_argument("--after", type=int, default=0)
    parser.add_argument("--reset", action="store_true")
    parser.add_argument("--stall", type=float, default=1.0)
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args()
    try:
        result = act(args)
    except Exception:
        result = {"error": traceback.format_exc()}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
