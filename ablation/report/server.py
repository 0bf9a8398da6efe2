"""`python -m ablation serve`: a results folder over HTTP, read-only, and nothing outside it.

A folder may hold what others wrote (a shared cluster filesystem), so the server answers only GET
and HEAD of regular files that lie inside the folder once links are resolved, and never a hidden
file (a run's `.lock` names its host and PID) or a listing of a folder (a folder is its index.html
or nothing). Every response carries the pages' Content-Security-Policy, so a script in a file
(an SVG opened on its own, an HTML file someone added) does not run in the folder's origin.
"""

from __future__ import annotations

import email.utils
import errno
import functools
import http.server
import ipaddress
import os
import socket
import stat
import urllib.parse
from http import HTTPStatus
from pathlib import Path

from ablation.core import layout
from ablation.core.errors import ConfigError
from ablation.report.pages import content_security_policy


class ReadOnlyHandler(http.server.SimpleHTTPRequestHandler):
    """GET and HEAD of the folder's regular, visible files (any other method is 501)."""

    # The base class answers a request line it cannot read as HTTP/0.9: a body without a status line or
    # headers, so without the policy. As 1.0, that answer has both.
    default_request_version = "HTTP/1.0"
    # Seconds a connection may stay silent: a client that never finishes its request does not hold a thread.
    timeout = 60

    def parse_request(self):
        if len(str(self.raw_requestline, "iso-8859-1").split()) == 2:  # HTTP/0.9: no headers, so no policy
            self.close_connection = True
            return False  # no answer: the connection closes
        return super().parse_request()

    def handle(self):
        try:
            super().handle()
        except ConnectionError:  # the client went away (a closed tab, a stopped download): normal, no traceback
            self.close_connection = True

    def version_string(self):
        return "ablation-serve"  # the Server header: no Python or library version

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # a page pulls a dozen files: no line each

    def end_headers(self):
        self.send_header("Content-Security-Policy", content_security_policy() + "; frame-ancestors 'none'")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def send_head(self):
        url_path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        root = Path(self.directory).resolve()
        parts = [part for part in url_path.split("/") if part not in ("", ".")]
        target = served_file(root, parts)
        if target is None:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        if target.name == layout.INDEX_PAGE and (root.joinpath(*parts)).is_dir() and not url_path.endswith("/"):
            # runs/ID -> runs/ID/: the page's links are relative. Built from the parts, the place is a path of
            # this server whatever the request (from "/%2Fevil.com" as it came: "//evil.com/", another host).
            location = "/" + "".join(urllib.parse.quote(part, safe="") + "/" for part in parts)
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        try:  # O_NOFOLLOW: a link put in the file's place since it was resolved is not followed
            handle = os.fdopen(os.open(target, os.O_RDONLY | os.O_NOFOLLOW), "rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            handle.close()
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", self.guess_type(str(target)))
        self.send_header("Content-Length", str(status.st_size))
        self.send_header("Last-Modified", email.utils.formatdate(status.st_mtime, usegmt=True))
        self.end_headers()
        return handle


def served_file(root: Path, parts: list[str]) -> Path | None:
    """The regular file that URL path `parts` names inside `root` (a folder: its index.html), with every
    link resolved; None if it is hidden, outside the folder, or not a regular file."""
    if any(part.startswith(".") or "\0" in part for part in parts):  # hidden files, and ".."
        return None
    try:
        path = root.joinpath(*parts)
        if path.is_dir():
            path = path / layout.INDEX_PAGE
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a link loop
        return None
    if not real.is_relative_to(root) or any(part.startswith(".") for part in real.relative_to(root).parts):
        return None
    return real if real.is_file() else None


def make_server(folder: Path, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """The server of `serve`, bound but not yet serving (tests drive it; port 0 picks a free one).
    An address that cannot be had is a one-line ConfigError saying which and why."""
    handler = functools.partial(ReadOnlyHandler, directory=str(folder))
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except socket.gaierror:
        raise ConfigError(f"--host {host!r} is not an address of this machine (the name does not resolve); "
                          f"expected e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface).") from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(f"cannot serve on {host}:{port} (the port is in use); expected a free port, "
                              f"e.g. --port {port + 1}, or --port 0 for any free one.") from None
        if error.errno == errno.EACCES:
            raise ConfigError(f"cannot serve on {host}:{port} (permission denied: ports below 1024 need root); "
                              f"expected a port from 1024, e.g. --port 8000.") from None
        raise ConfigError(f"cannot serve on {host}:{port} ({error.strerror}); expected an address of this machine, "
                          f"e.g. --host 127.0.0.1 (this machine only) or 0.0.0.0 (every interface).") from None


def exposed(server: http.server.HTTPServer) -> bool:
    """Whether the server listens beyond this machine (any address but a loopback one)."""
    return not ipaddress.ip_address(server.server_address[0]).is_loopback
