"""nginx (Debian's package) as a local load balancer in front of server replicas.

Everything nginx writes (pid, logs, temporary files) stays in a temporary folder of its own, so it
runs the same as root (CI) and as a normal user.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from ._pg import free_port
from ._server import terminate, wait_answering

__all__ = ["Nginx", "find_nginx"]

_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def find_nginx() -> str | None:
    # Debian installs it in /usr/sbin, which is not on a normal user's PATH.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


class Nginx:
    """Round-robin over `upstreams` ("host:port"), listening on 127.0.0.1:`port`."""

    def __init__(self, binary: str, upstreams: list[str], port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = Path(tempfile.mkdtemp(prefix="m2m-auth-nginx-"))
        self.conf = self.root / "nginx.conf"
        self.error_log = self.root / "error.log"
        self.proc: subprocess.Popen[bytes] | None = None
        for name in _TEMP_DIRS:
            (self.root / name).mkdir()
        user = ""
        if os.geteuid() == 0:
            # The master keeps root; workers drop to nobody, which must be able to use the temp folders.
            nobody = pwd.getpwnam("nobody")
            user = f"user {nobody.pw_name} {grp.getgrgid(nobody.pw_gid).gr_name};"
            os.chmod(self.root, 0o755)
            for name in _TEMP_DIRS:
                os.chown(self.root / name, nobody.pw_uid, nobody.pw_gid)
        self.conf.write_text(self._config(user, upstreams))

    def _config(self, user: str, upstreams: list[str]) -> str:
        temp_paths = "\n".join(f"    {name}_temp_path {self.root / name};" for name in _TEMP_DIRS)
        # max_fails/fail_timeout: a replica that refused a connection is skipped for a second, then tried again.
        servers = "\n".join(f"        server {upstream} max_fails=1 fail_timeout=1s;" for upstream in upstreams)
        return f"""\
{user}
worker_processes 1;
pid {self.root / "nginx.pid"};
error_log {self.error_log} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp_paths}
    upstream m2m_auth {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        # Keep-alive connections to the replicas: HTTP/1.1 without the client's Connection header.
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_connect_timeout 2s;
        # Only requests that got no answer at all are tried on the next replica (never a 4xx or 5xx).
        proxy_next_upstream error timeout;
        location /oauth/ {{
            # POSTs to the OAuth endpoints may be retried even when the first replica may have received them:
            # - /oauth/token issues a new, independent token per request. If the first replica stored one
            #   but its answer was lost, nobody ever sees that token; it expires and is purged. The caller
            #   gets exactly one token. (A private_key_jwt assertion whose jti the first replica recorded
            #   is refused as a replay by the second: an invalid_client answer, never a duplicate grant.)
            # - /oauth/introspect only reads.
            # - /oauth/revoke is idempotent: revoking twice leaves the same state and answers 200 both times.
            # The admin API is not retried: a duplicated POST would create a second client or rotate a
            # secret twice, invalidating the one the first answer carried.
            proxy_next_upstream error timeout non_idempotent;
            proxy_pass http://m2m_auth;
        }}
        location / {{
            proxy_pass http://m2m_auth;
        }}
    }}
}}
"""

    def start(self, timeout: float = 10.0) -> Nginx:
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.root), "-e", str(self.error_log), "-c", str(self.conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:  # any answer will do: nginx listens
            wait_answering(self.proc, f"{self.url}/healthz", timeout, "nginx", self.log, ok_only=False)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
