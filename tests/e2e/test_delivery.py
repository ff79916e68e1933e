"""Delivery through parts this project did not write, in booted Debian 11, 12 and 13.

In each container: the .deb installed as on a minimal server
(``apt-get install --no-install-recommends``); a private CA made with openssl and
installed into the system store (update-ca-certificates); Debian's nginx terminating
TLS for ``localhost`` and proxying to a Receiver on the host's loopback (the
containers share it); Debian's tinyproxy as the ``https_proxy`` (CONNECT). The endpoint
is given by name, https://localhost:PORT: /etc/hosts lists ::1 first and nginx
listens on 127.0.0.1 only, so every address of the name must be tried.
"""

from __future__ import annotations

import socket
import subprocess
import unittest

from seestack_systemd.receiver.receive import Receiver
from tests.e2e import harness
from tests.e2e.package import built_deb

API_KEY = "sk-e2e-delivery-0123456789abcdef"
PKI = "/root/e2e-pki"
CONF = "/etc/seestack/seestack.conf"
KEY_FILE = "/etc/seestack/api-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NGINX_CONF = """\
worker_processes 1;
pid /run/e2e-nginx.pid;
error_log /var/log/e2e-nginx.error.log;
events {{ worker_connections 64; }}
http {{
    access_log /var/log/e2e-nginx.access.log;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {pki}/server.pem;
        ssl_certificate_key {pki}/server.key;
        location /v1/ {{ proxy_pass http://127.0.0.1:{backend}; }}
        location / {{ return 404; }}
    }}
}}
"""

TINYPROXY_CONF = """\
User nobody
Group nogroup
Port {port}
Listen 127.0.0.1
Timeout 30
LogLevel Connect
PidFile "/run/e2e-tinyproxy.pid"
MaxClients 10
# Debian 11's tinyproxy 1.10 pre-forks and needs these; 1.11 ignores them.
StartServers 2
MinSpareServers 1
MaxSpareServers 4
Allow 127.0.0.1
ConnectPort {tls_port}
"""

MAKE_CA = f"""set -e
mkdir -p {PKI}; cd {PKI}
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=SeeStack e2e CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost\\n' > ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext 2>/dev/null
cp ca.pem /usr/local/share/ca-certificates/seestack-e2e.crt
update-ca-certificates >/dev/null
"""


class Delivery(harness.ReleaseTest):
    c: harness.Container
    receiver: Receiver

    @classmethod
    def setUpClass(cls) -> None:
        harness.require_root("the e2e suite boots Debian containers with systemd-nspawn")
        deb = built_deb()
        cls.receiver = Receiver(port=free_port(), api_key=API_KEY).start()
        cls.addClassCleanup(cls.receiver.stop)
        cls.tls_port, cls.proxy_port = free_port(), free_port()
        cls.c = harness.Container(cls.release, binds=[(str(deb.parent), "/mnt/dist", True)])
        cls.addClassCleanup(cls.c.poweroff)
        cls.c.boot()
        cls.install = cls.c.run(["apt-get", "install", "-y", "--no-install-recommends", f"/mnt/dist/{deb.name}"],
                                check=False, timeout=180, env={"DEBIAN_FRONTEND": "noninteractive"})
        cls.c.sh(MAKE_CA)
        cls.c.write_file("/root/e2e-nginx.conf", NGINX_CONF.format(
            port=cls.tls_port, pki=PKI, backend=cls.receiver._server.server_address[1]))
        cls.c.write_file("/root/e2e-tinyproxy.conf", TINYPROXY_CONF.format(port=cls.proxy_port, tls_port=cls.tls_port))
        cls.c.run(["systemd-run", "--unit", "e2e-nginx", "--", "/usr/sbin/nginx", "-c", "/root/e2e-nginx.conf",
                   "-g", "daemon off;"])
        cls.c.run(["systemd-run", "--unit", "e2e-tinyproxy", "--", "/usr/bin/tinyproxy", "-d", "-c",
                   "/root/e2e-tinyproxy.conf"])
        cls.c.sh(f"for i in $(seq 100); do curl -s -o /dev/null https://localhost:{cls.tls_port}/ && "
                 f"curl -s -o /dev/null -p -x http://127.0.0.1:{cls.proxy_port} https://localhost:{cls.tls_port}/ "
                 "&& exit 0; sleep 0.1; done; exit 1")

    def setUp(self) -> None:
        if self.install.returncode:
            self.fail(f"apt-get install failed:\n{self.install.stdout}\n{self.install.stderr}")
        self.c.run(["rm", "-rf", "/var/lib/seestack/spool"])
        self.key(API_KEY)
        self.settle = len(self.receiver.requests)

    def key(self, key: str) -> None:
        self.c.write_file(KEY_FILE, key + "\n", 0o600)

    def configure(self, endpoint: str, *extra: str) -> None:
        self.c.write_file(CONF, "\n".join(["[seestack]", f"endpoint = {endpoint}", f"api_key_file = {KEY_FILE}",
                                            "deadline = 5", *extra, ""]), 0o600)

    def ping(self, slug: str) -> subprocess.CompletedProcess:
        return self.c.run(["/usr/bin/seestack-hook", "ping", "--status", "success", slug], check=False, timeout=30)

    def new_requests(self) -> list:
        return self.receiver.requests[self.settle:]

    def test_ca_certificates_is_a_dependency(self):
        """the package Depends on ca-certificates (a --no-install-recommends install keeps the trust store)"""
        depends = self.c.run(["dpkg-query", "-W", "-f", "${Depends}", "seestack-systemd"]).stdout
        self.assertIn("ca-certificates", depends)

    def test_nginx_tls_private_ca_in_system_store(self):
        """https://localhost:PORT through Debian's nginx, the private CA only in the system store: delivered once"""
        first = self.c.run(["/usr/bin/python3", "-c", "import socket; print(socket.getaddrinfo('localhost', 9,"
                            " type=socket.SOCK_STREAM)[0][4][0])"]).stdout.strip()
        self.assertEqual(first, "::1")  # where nginx does not listen: the next address must be tried
        self.configure(f"https://localhost:{self.tls_port}")
        done = self.ping("e2e-tls")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("delivered (HTTP 202)", done.stderr)
        [request] = self.new_requests()
        self.assertEqual((request.path, request.status), ("/v1/cron/heartbeats", 202))
        self.assertEqual(request.json()["slug"], "e2e-tls")

    def test_tinyproxy_connect(self):
        """https_proxy through Debian's tinyproxy with CONNECT: delivered; the proxy logged the tunnel"""
        self.configure(f"https://localhost:{self.tls_port}", f"https_proxy = http://127.0.0.1:{self.proxy_port}")
        done = self.ping("e2e-proxy")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual([r.json()["slug"] for r in self.new_requests()], ["e2e-proxy"])
        self.c.journal("e2e-tinyproxy", contains=f"CONNECT localhost:{self.tls_port}")

    def test_full_url_endpoint(self):
        """an endpoint pasted as the full ingest URL: one heartbeat to /v1/cron/heartbeats, and a warning"""
        self.configure(f"https://localhost:{self.tls_port}/v1/cron/heartbeats")
        done = self.ping("e2e-full-url")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("is the full ingest URL", done.stderr)
        self.assertEqual([r.path for r in self.new_requests()], ["/v1/cron/heartbeats"])

    def test_nginx_404_kept(self):
        """nginx's own HTML 404 for a wrong base path is kept in the spool, naming the URL that answered"""
        self.configure(f"https://localhost:{self.tls_port}/wrong")
        done = self.ping("e2e-wrong-path")
        self.assertEqual(done.returncode, 75, done.stderr)
        self.assertIn(f"https://localhost:{self.tls_port}/wrong/v1/cron/heartbeats answered HTTP 404", done.stderr)
        self.assertEqual(len(self.c.run(["ls", "/var/lib/seestack/spool"]).stdout.split()), 1)
        self.assertEqual(self.new_requests(), [])

    def test_401_kept_then_replayed(self):
        """a refused key keeps the heartbeat; once the key is fixed, flush delivers it with the same Idempotency-Key"""
        self.configure(f"https://localhost:{self.tls_port}")
        self.key("sk-e2e-wrong-key-00000000")
        done = self.ping("e2e-key")
        self.assertEqual(done.returncode, 75, done.stderr)
        self.assertIn(f"rejected the API key from file {KEY_FILE}", done.stderr)
        [refused] = self.new_requests()
        self.key(API_KEY)
        flushed = self.c.run(["/usr/bin/seestack-hook", "flush"], check=False, timeout=30)
        self.assertEqual(flushed.returncode, 0, flushed.stderr)
        replayed = self.new_requests()[1:]
        self.assertEqual([(r.status, r.headers["idempotency-key"]) for r in replayed],
                         [(202, refused.headers["idempotency-key"])])


harness.per_release(Delivery, globals())


if __name__ == "__main__":
    unittest.main()
