"""A heartbeat that can be neither delivered nor spooled is lost: `ping` and
`check --send` exit 1 for it, not 75 ("spooled for replay"). Real processes, a real
closed port and a spool directory anyone may write to."""

import os
import socket

from ..support import HookTestCase


class LostHeartbeat(HookTestCase):
    def setUp(self):
        super().setUp()
        reserve = socket.socket()
        reserve.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        self.addCleanup(reserve.close)
        # A spool anyone may write to is refused (it is read, not written): nothing can be spooled.
        os.makedirs(os.path.join(self.data_dir, "spool"), 0o700)
        os.chmod(os.path.join(self.data_dir, "spool"), 0o777)
        self.env.update(SEESTACK_ENDPOINT=f"http://127.0.0.1:{reserve.getsockname()[1]}", SEESTACK_DEADLINE="1")

    def test_ping_and_check_send_exit_1_when_not_spooled(self):
        """endpoint down and the spool unwritable: ping and check --send say it is lost and exit 1"""
        for args in (("ping", "job", "--status", "success"), ("check", "--send", "job")):
            done = self.hook(*args)
            self.assertIn("could not be spooled, so it is lost", done.stderr)
            self.assertEqual(done.returncode, 1, (args, done.stderr))

    def test_ping_exits_75_when_spooled(self):
        """endpoint down, spool writable: 75, the heartbeat waits in the spool"""
        done = self.hook("ping", "job", "--status", "success", env={"SEESTACK_DATA_DIR": os.path.join(self.dir, "ok")})
        self.assertIn("spooled in", done.stderr)
        self.assertEqual(done.returncode, 75, done.stderr)
