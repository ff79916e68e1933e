"""HTTPS for real: a private CA through ca_file, hostname checks, and an https_proxy CONNECT tunnel."""

import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from seestack_systemd.settings.config import parse_endpoint
from seestack_systemd.receiver.receive import Receiver
from seestack_systemd.delivery.report import send
from seestack_systemd.delivery.transport import Client, Target

from .test_transport import BODY, RUN_ID


def make_ca(directory: str) -> tuple:
    """A CA and a certificate for 'localhost' signed by it (openssl, as an operator would)."""
    def run(*argv):
        subprocess.run(["openssl", *argv], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=Test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(directory, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "1", "-extfile", "ext")
    return os.path.join(directory, "ca.pem"), os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")


class ConnectProxy:
    """A minimal CONNECT proxy on loopback that records the authorities it tunnels to."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.tunnels = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        authority = head.split(b" ")[1].decode()
        self.tunnels.append(authority)
        host, _, port = authority.rpartition(":")
        upstream = socket.create_connection(("127.0.0.1", int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        pair = {client: upstream, upstream: client}
        while True:
            ready, _, _ = select.select(list(pair), [], [], 5)
            if not ready:
                break
            for s in ready:
                data = s.recv(65536)
                if not data:
                    client.close()
                    upstream.close()
                    return
                pair[s].sendall(data)

    def close(self) -> None:
        self.sock.close()


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command (tests/install-deps.sh installs it)")
class HTTPS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.ca, cert, key = make_ca(cls.tmp)
        cls.receiver = Receiver(host="127.0.0.1")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = cls.receiver._server
        server.socket = context.wrap_socket(server.socket, server_side=True)
        cls.receiver.start()
        cls.port = server.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.receiver.stop()
        shutil.rmtree(cls.tmp)

    def post(self, url: str, ca_file=None, proxy=None, no_proxy=None):
        target = Target(parse_endpoint(url), "key-1234", "test", 2.0, ca_file, proxy, no_proxy)
        return send(Client(target), BODY, RUN_ID, "job", time.monotonic() + 3)

    def test_private_ca(self):
        """ca_file makes a private CA's certificate verify: delivered over TLS"""
        before = len(self.receiver.requests)
        result = self.post(f"https://localhost:{self.port}", self.ca)
        self.assertTrue(result.delivered, result.detail)
        self.assertEqual(len(self.receiver.requests), before + 1)

    def test_system_store_refuses(self):
        """without ca_file the same certificate does not verify: kept for replay, says to install the CA or set ca_file"""
        result = self.post(f"https://localhost:{self.port}")
        self.assertEqual((result.outcome, result.attempts), ("temporary", 1))
        self.assertIn("set ca_file", result.detail)
        self.assertIn("update-ca-certificates", result.detail)

    def test_hostname_checked(self):
        """a certificate for 'localhost' is refused for 127.0.0.1 even with its CA: hostname verification is on"""
        before = len(self.receiver.requests)
        result = self.post(f"https://127.0.0.1:{self.port}", self.ca)
        self.assertEqual((result.outcome, result.attempts), ("temporary", 1))
        self.assertIn("IP address mismatch", result.detail)
        self.assertIn(f"check ca_file ({self.ca})", result.detail)
        self.assertEqual(len(self.receiver.requests), before)

    def test_https_proxy_tunnel(self):
        """https_proxy tunnels with CONNECT and still verifies the backend's certificate"""
        proxy = ConnectProxy()
        self.addCleanup(proxy.close)
        result = self.post(f"https://localhost:{self.port}", self.ca, proxy=proxy.url)
        self.assertTrue(result.delivered, result.detail)
        self.assertEqual(proxy.tunnels, [f"localhost:{self.port}"])

    def test_no_proxy(self):
        """no_proxy names hosts that bypass the proxy"""
        proxy = ConnectProxy()
        self.addCleanup(proxy.close)
        result = self.post(f"https://localhost:{self.port}", self.ca, proxy=proxy.url, no_proxy="example.org, localhost")
        self.assertTrue(result.delivered, result.detail)
        self.assertEqual(proxy.tunnels, [])


if __name__ == "__main__":
    unittest.main()
