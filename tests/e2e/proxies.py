"""Real reverse proxies for e2e tests: nginx (auth_request) and Caddy (forward_auth) on loopback ports.

Each runs from a temp folder with its own config, pid and logs. Outside CI a missing binary skips
the test with an install hint; under ``CI=true`` it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.e2e.processes import free_port, stop
from tests.helpers import missing

NGINX = "/usr/sbin/nginx"
CADDY = "/usr/bin/caddy"


def require_binary(path: str, *, install: str = "apt-get install nginx caddy") -> str:
    """``path``, or the program of its name on PATH; missing, the test skips (under CI it fails) with ``install``."""
    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if found:
        return found
    missing(f"{path} is not installed: {install}")


def wait_port(
    port: int, proc: subprocess.Popen[bytes], log: Path, deadline: float = 120, *, what: str = "proxy"
) -> None:
    """Wait until ``proc`` (``what``, logging to ``log``) accepts connections on 127.0.0.1:``port``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited early: {log.read_text() if log.exists() else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not listen within {deadline} s: {log.read_text() if log.exists() else ''}")


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def http_upstream(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """A tiny threaded HTTP server on a free 127.0.0.1 port answering with ``handler``; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def echo_upstream() -> AbstractContextManager[int]:
    """An upstream that answers every GET with the headers it received, as JSON."""
    return http_upstream(_Echo)


# What every test nginx needs to run unprivileged from a temporary folder; configs append a server.
NGINX_HEAD = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
"""

# The auth_request target of docs/ui.md and docs/oidc.md (docs/proxies.md adds X-Request-ID), and the end
# of the server and http blocks.
NGINX_VERIFY_TAIL = """    location = /_tokenward_verify {{
      internal;
      proxy_pass http://127.0.0.1:{tokenward}/verify?{query};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"""

NGINX_CONF = (
    NGINX_HEAD
    + """  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_request /_tokenward_verify;
      auth_request_set $tw_user $upstream_http_remote_user;
      auth_request_set $tw_email $upstream_http_remote_email;
      auth_request_set $tw_groups $upstream_http_remote_groups;
      auth_request_set $tw_name $upstream_http_remote_name;
      auth_request_set $tw_custom $upstream_http_x_custom;
      proxy_set_header Remote-User $tw_user;
      proxy_set_header Remote-Email $tw_email;
      proxy_set_header Remote-Groups $tw_groups;
      proxy_set_header Remote-Name $tw_name;
      proxy_set_header X-Custom $tw_custom;
      proxy_pass http://127.0.0.1:{upstream};
    }}
    location = /_tokenward_verify {{
      internal;
      proxy_pass http://127.0.0.1:{tokenward}/verify?{query};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Request-ID $request_id;
    }}
  }}
}}
"""
)

CADDYFILE = """
{{
  admin off
  auto_https off
  storage file_system {tmp}/data
}}
http://127.0.0.1:{port} {{
  forward_auth 127.0.0.1:{tokenward} {{
    uri /verify?{query}
    copy_headers Remote-User Remote-Email Remote-Groups Remote-Name X-Custom
  }}
  reverse_proxy 127.0.0.1:{upstream}
}}
"""


@contextmanager
def run_nginx(
    tmp: Path, *, tokenward: int, upstream: int, query: str, template: str = NGINX_CONF, port: int | None = None
) -> Iterator[int]:
    """nginx from ``template`` (``{tmp} {port} {upstream} {tokenward} {query}``) on ``port`` (default: a free
    one); yields the port."""
    binary = require_binary(NGINX)
    tmp.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(template.format(tmp=tmp, port=port, upstream=upstream, tokenward=tokenward, query=query))
    log = tmp / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([binary, "-p", str(tmp), "-c", str(conf)], stdout=err, stderr=err)
    try:
        wait_port(port, proc, tmp / "error.log")
        yield port
    finally:
        stop(proc)


@contextmanager
def run_caddy(tmp: Path, *, tokenward: int, upstream: int, query: str) -> Iterator[int]:
    binary = require_binary(CADDY)
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = tmp / "Caddyfile"
    conf.write_text(CADDYFILE.format(tmp=tmp, port=port, upstream=upstream, tokenward=tokenward, query=query))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "XDG_DATA_HOME": str(tmp / "xdg-data"),
        "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
    }
    log = tmp / "caddy.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [binary, "run", "--config", str(conf), "--adapter", "caddyfile"], stdout=err, stderr=err, env=env
        )
    try:
        wait_port(port, proc, log)
        yield port
    finally:
        stop(proc)
