"""Start records (state.save / state.take) and the private-file layer under them (files.py):
round trips, durations, ids, broken records, and planted symlinks, FIFOs and loose permissions.

Everything happens in real temporary directories; the root-only checks skip as another user.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import threading
import time
import unittest
import uuid
from unittest import mock

from seestack_systemd import files, state
from seestack_systemd.errors import StateError
from seestack_systemd.state import StartRecord

SLUG = "nightly-backup"
INV_A = "0123456789abcdef0123456789abcdef"
INV_B = "fedcba9876543210fedcba9876543210"
IS_ROOT = os.geteuid() == 0
NOBODY = 65534


def mode_of(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class StateCase(unittest.TestCase):
    """A private temporary root per test; ``state_dir`` inside it does not exist yet."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="seestack-state-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.state_dir = os.path.join(self.root, "state")
        # Somewhere outside the state directory for planted links to point at.
        self.outside = tempfile.mkdtemp(prefix="seestack-outside-")
        self.addCleanup(shutil.rmtree, self.outside, True)

    def victim(self, content: bytes = b"precious\n", name: str = "victim") -> str:
        path = os.path.join(self.outside, name)
        with open(path, "wb") as f:
            f.write(content)
        return path

    def record_path(self, inv: str = INV_A, slug: str = SLUG) -> str:
        return os.path.join(self.state_dir, slug, inv + ".json")

    def slug_dir(self, slug: str = SLUG) -> str:
        """Create and return STATE_DIR/SLUG the way save would (0700)."""
        path = os.path.join(files.secure_dir(self.state_dir), slug)
        return files.secure_dir(path)


class RoundTripTests(StateCase):
    """save then take gives the record back once."""

    def test_round_trip(self):
        """a saved record comes back from take field for field, and its duration is the elapsed time"""
        record = state.new_record(INV_A)
        path = state.save(self.state_dir, SLUG, record)
        self.assertEqual(path, self.record_path())
        doc = json.loads(read(path))
        self.assertEqual(doc["runId"], record.run_id)
        got, problem = state.take(self.state_dir, SLUG, INV_A)
        self.assertIsNone(problem)
        self.assertEqual(got, record)
        elapsed = got.duration_ms(time.time(), time.monotonic(), state.current_boot_id())
        self.assertGreaterEqual(elapsed, 0)
        self.assertLess(elapsed, 5000)

    def test_record_removed_after_take(self):
        """take removes the record, so a second take finds none"""
        state.save(self.state_dir, SLUG, state.new_record(INV_A))
        self.assertIsNotNone(state.take(self.state_dir, SLUG, INV_A)[0])
        self.assertFalse(os.path.lexists(self.record_path()))
        record, problem = state.take(self.state_dir, SLUG, INV_A)
        self.assertIsNone(record)
        self.assertIn("seestack-hook start", problem)

    def test_manual_id_outside_systemd(self):
        """without an INVOCATION_ID the record is STATE_DIR/SLUG/manual.json and round-trips"""
        record = state.new_record(None)
        self.assertEqual(record.invocation_id, "manual")
        self.assertEqual(state.save(self.state_dir, SLUG, record), self.record_path("manual"))
        self.assertEqual(state.take(self.state_dir, SLUG, "")[0].run_id, record.run_id)

    def test_parallel_invocations_do_not_clash(self):
        """records of one slug under two invocation ids are kept apart and each comes back to its own take"""
        a, b = state.new_record(INV_A), state.new_record(INV_B)
        state.save(self.state_dir, SLUG, a)
        state.save(self.state_dir, SLUG, b)
        self.assertEqual(sorted(os.listdir(os.path.join(self.state_dir, SLUG))), sorted([INV_A + ".json", INV_B + ".json"]))
        self.assertEqual(state.take(self.state_dir, SLUG, INV_B)[0].run_id, b.run_id)
        self.assertEqual(state.take(self.state_dir, SLUG, INV_A)[0].run_id, a.run_id)

    def test_saving_again_replaces(self):
        """a second start of the same invocation replaces the first record"""
        state.save(self.state_dir, SLUG, state.new_record(INV_A))
        second = state.new_record(INV_A)
        state.save(self.state_dir, SLUG, second)
        self.assertEqual(os.listdir(os.path.join(self.state_dir, SLUG)), [INV_A + ".json"])
        self.assertEqual(state.take(self.state_dir, SLUG, INV_A)[0].run_id, second.run_id)

    def test_modes(self):
        """records are 0600 and new state and slug directories 0700, even under umask 000"""
        old = os.umask(0)
        try:
            path = state.save(self.state_dir, SLUG, state.new_record(INV_A))
        finally:
            os.umask(old)
        self.assertEqual(mode_of(path), 0o600)
        self.assertEqual(mode_of(self.state_dir), 0o700)
        self.assertEqual(mode_of(os.path.dirname(path)), 0o700)
        self.assertEqual(os.lstat(path).st_uid, os.geteuid())


class DurationTests(unittest.TestCase):
    """StartRecord.duration_ms picks its clock by boot id."""

    def test_same_boot_uses_monotonic(self):
        """on the same boot the duration is monotonic time, immune to a wall-clock step"""
        record = StartRecord(str(uuid.uuid4()), INV_A, wall=1_000_000.0, mono=50.0, boot_id="boot-1")
        # The wall clock jumped back an hour meanwhile; 2.5 s passed by the monotonic clock.
        self.assertEqual(record.duration_ms(now_wall=996_400.0, now_mono=52.5, boot_id="boot-1"), 2500)

    def test_other_boot_uses_wall(self):
        """after a reboot (other boot id, or none known) the duration is wall time"""
        record = StartRecord(str(uuid.uuid4()), INV_A, wall=1_000_000.0, mono=50_000.0, boot_id="boot-1")
        self.assertEqual(record.duration_ms(now_wall=1_000_004.25, now_mono=3.0, boot_id="boot-2"), 4250)
        self.assertEqual(record.duration_ms(now_wall=1_000_004.25, now_mono=50_001.0, boot_id=""), 4250)
        unknown = StartRecord(str(uuid.uuid4()), INV_A, wall=1_000_000.0, mono=1.0, boot_id="")
        self.assertEqual(unknown.duration_ms(now_wall=1_000_001.0, now_mono=99.0, boot_id=""), 1000)

    def test_never_negative(self):
        """a wall clock stepped back across a reboot gives 0, not a negative duration"""
        record = StartRecord(str(uuid.uuid4()), INV_A, wall=1_000_000.0, mono=5.0, boot_id="boot-1")
        self.assertEqual(record.duration_ms(now_wall=999_000.0, now_mono=1.0, boot_id="boot-2"), 0)


class IdTests(unittest.TestCase):
    """Run ids and invocation ids."""

    def test_run_id_is_uuid4(self):
        """new_run_id is a canonical lowercase version-4 RFC 4122 UUID"""
        for _ in range(200):
            run_id = state.new_run_id()
            parsed = uuid.UUID(run_id)
            self.assertEqual(parsed.version, 4)
            self.assertEqual(parsed.variant, uuid.RFC_4122)
            self.assertEqual(str(parsed), run_id)

    def test_run_ids_unique(self):
        """10,000 run ids are all different"""
        self.assertEqual(len({state.new_run_id() for _ in range(10_000)}), 10_000)

    def test_invalid_invocation_id(self):
        """an INVOCATION_ID that is not 32 lowercase hex digits: StateError from new_record, (None, why) from take"""
        for bad in ("abc", "g" * 32, INV_A.upper(), INV_A + "0", "../../../../../../tmp/evil-0000000", INV_A[:-1] + "/"):
            with self.subTest(invocation_id=bad):
                with self.assertRaises(StateError) as cm:
                    state.new_record(bad)
                self.assertIn("32 hex", str(cm.exception))
                record, why = state.take(tempfile.gettempdir(), SLUG, bad)
                self.assertIsNone(record)
                self.assertIn("32 hex", why)


class BrokenRecordTests(StateCase):
    """take on missing or unusable records: (None, why), and the bad file is gone."""

    def test_missing_record(self):
        """no record, no slug directory or no state directory at all: (None, a hint to run 'seestack-hook start')"""
        record, problem = state.take(self.state_dir, SLUG, INV_A)  # nothing exists
        self.assertIsNone(record)
        self.assertIn(f"seestack-hook start {SLUG}", problem)
        files.secure_dir(self.state_dir)
        self.assertIn("seestack-hook start", state.take(self.state_dir, SLUG, INV_A)[1])
        self.slug_dir()
        self.assertIn("seestack-hook start", state.take(self.state_dir, SLUG, INV_A)[1])

    def test_corrupt_records(self):
        """an empty, truncated, non-JSON or wrongly shaped record gives (None, why) and is removed"""
        good = state.save(self.state_dir, SLUG, state.new_record(INV_A))
        text = read(good)
        os.unlink(good)
        cases = {
            "empty": b"",
            "truncated": text[: len(text) // 2],
            "not json": b"started at noon\n",
            "array": b"[]",
            "null": b"null",
            "missing field": json.dumps({k: v for k, v in json.loads(text).items() if k != "monotonic"}).encode(),
            "bad number": json.dumps(dict(json.loads(text), startedAt="soon")).encode(),
            "short run id": json.dumps(dict(json.loads(text), runId="r1")).encode(),
        }
        directory = self.slug_dir()
        for name, content in cases.items():
            with self.subTest(case=name):
                files.atomic_write(directory, INV_A + ".json", content)
                record, problem = state.take(self.state_dir, SLUG, INV_A)
                self.assertIsNone(record)
                self.assertIn(self.record_path(), problem)
                self.assertFalse(os.path.lexists(self.record_path()), "the unusable record was left behind")

    def test_oversized_record(self):
        """a record over 1 MiB is refused and removed"""
        directory = self.slug_dir()
        files.atomic_write(directory, INV_A + ".json", b" " * (files.MAX_FILE_BYTES + 1))
        record, problem = state.take(self.state_dir, SLUG, INV_A)
        self.assertIsNone(record)
        self.assertIn("too large", problem)
        self.assertFalse(os.path.lexists(self.record_path()))

    def test_record_is_a_directory(self):
        """a directory where the record should be gives (None, why) without crashing"""
        self.slug_dir()
        os.mkdir(self.record_path(), 0o700)
        record, problem = state.take(self.state_dir, SLUG, INV_A)
        self.assertIsNone(record)
        self.assertIn("not a regular file", problem)


class SymlinkTests(StateCase):
    """Planted links are never followed: not at the record, not as the slug or state directory."""

    def test_save_replaces_planted_link(self):
        """save over a symlink planted at the record path replaces the link and leaves its target unchanged"""
        victim = self.victim()
        self.slug_dir()
        os.symlink(victim, self.record_path())
        record = state.new_record(INV_A)
        state.save(self.state_dir, SLUG, record)
        self.assertEqual(read(victim), b"precious\n")
        self.assertFalse(os.path.islink(self.record_path()))
        self.assertEqual(json.loads(read(self.record_path()))["runId"], record.run_id)

    def test_take_does_not_follow_planted_link(self):
        """take refuses a record path that is a symlink, removes the link and leaves its target in place"""
        # The target is a perfectly valid record of ours, so only the symlink check can refuse it.
        planted = state.new_record(INV_A)
        state.save(self.state_dir, SLUG, planted)
        victim = os.path.join(self.outside, "record.json")
        os.rename(self.record_path(), victim)
        content = read(victim)
        os.symlink(victim, self.record_path())
        record, problem = state.take(self.state_dir, SLUG, INV_A)
        self.assertIsNone(record)
        self.assertIn("symlink", problem)
        self.assertEqual(read(victim), content)
        self.assertFalse(os.path.lexists(self.record_path()))

    def test_state_dir_symlink_refused(self):
        """a state_dir that is a symlink to another directory is refused by save and take"""
        real = os.path.join(self.outside, "real-state")
        os.mkdir(real, 0o700)
        os.symlink(real, self.state_dir)
        with self.assertRaises(StateError) as cm:
            state.save(self.state_dir, SLUG, state.new_record(INV_A))
        self.assertIn("symlink", str(cm.exception))
        self.assertEqual(os.listdir(real), [])
        # A valid record behind the link is not taken (nor removed).
        os.mkdir(os.path.join(real, SLUG), 0o700)
        files.atomic_write(os.path.join(real, SLUG), INV_A + ".json", b"{}")
        record, problem = state.take(self.state_dir, SLUG, INV_A)
        self.assertIsNone(record)
        self.assertTrue(os.path.exists(os.path.join(real, SLUG, INV_A + ".json")))

    def test_slug_dir_symlink_refused(self):
        """a slug directory replaced by a symlink is refused by save and take, and nothing outside is touched"""
        files.secure_dir(self.state_dir)
        elsewhere = os.path.join(self.outside, "elsewhere")
        os.mkdir(elsewhere, 0o700)
        valid = read(state.save(self.state_dir, "donor", state.new_record(INV_A)))
        files.atomic_write(elsewhere, INV_A + ".json", valid)
        before = read(os.path.join(elsewhere, INV_A + ".json"))
        os.symlink(elsewhere, os.path.join(self.state_dir, SLUG))
        with self.assertRaises(StateError):
            state.save(self.state_dir, SLUG, state.new_record(INV_A))
        record, problem = state.take(self.state_dir, SLUG, INV_A)
        self.assertIsNone(record)
        self.assertIn("symlink", problem)
        self.assertEqual(os.listdir(elsewhere), [INV_A + ".json"])
        self.assertEqual(read(os.path.join(elsewhere, INV_A + ".json")), before)


class PermissionTests(StateCase):
    """Directories others could write to, or that someone else owns, are refused."""

    def test_world_writable_state_dir_refused(self):
        """a state_dir of mode 0777 is refused with 'chmod 700', and take leaves its record alone"""
        state.save(self.state_dir, SLUG, state.new_record(INV_A))
        os.chmod(self.state_dir, 0o777)
        with self.assertRaises(StateError) as cm:
            state.save(self.state_dir, SLUG, state.new_record(INV_B))
        self.assertIn(f"chmod 700 {self.state_dir}", str(cm.exception))
        record, problem = state.take(self.state_dir, SLUG, INV_A)
        self.assertIsNone(record)
        self.assertIn("chmod 700", problem)
        self.assertTrue(os.path.exists(self.record_path()), "nothing is removed through an untrusted directory")

    def test_group_writable_slug_dir_refused(self):
        """a slug directory of mode 0770 is refused"""
        os.chmod(self.slug_dir(), 0o770)
        with self.assertRaises(StateError) as cm:
            state.save(self.state_dir, SLUG, state.new_record(INV_A))
        self.assertIn("chmod 700", str(cm.exception))

    def test_state_dir_is_a_file(self):
        """a regular file in place of state_dir is refused with StateError"""
        with open(self.state_dir, "w"):
            pass
        with self.assertRaises(StateError):
            state.save(self.state_dir, SLUG, state.new_record(INV_A))

    @unittest.skipUnless(IS_ROOT, "needs root to chown a directory to another uid")
    def test_foreign_state_dir_refused(self):
        """as root, a state_dir owned by uid 65534 is refused naming the owner and the chown fix"""
        state.save(self.state_dir, SLUG, state.new_record(INV_A))
        os.chown(self.state_dir, NOBODY, NOBODY)
        with self.assertRaises(StateError) as cm:
            state.save(self.state_dir, SLUG, state.new_record(INV_B))
        self.assertIn(f"uid {NOBODY}", str(cm.exception))
        self.assertIn("chown", str(cm.exception))
        self.assertIsNone(state.take(self.state_dir, SLUG, INV_A)[0])
        self.assertTrue(os.path.exists(self.record_path()))

    @unittest.skipUnless(IS_ROOT, "needs root to chown a record to another uid")
    def test_foreign_record_refused(self):
        """as root, a record owned by uid 65534 is not used, and is removed"""
        path = state.save(self.state_dir, SLUG, state.new_record(INV_A))
        os.chown(path, NOBODY, NOBODY)
        record, problem = state.take(self.state_dir, SLUG, INV_A)
        self.assertIsNone(record)
        self.assertIn(f"refusing {path}: it is owned by uid {NOBODY}, not uid 0", problem)
        self.assertFalse(os.path.lexists(path))


class ReadPrivateTests(StateCase):
    """files.read_private reads only regular files of ours, never through a link."""

    def test_reads_own_file(self):
        """read_private returns the bytes of a regular file we own"""
        path = files.atomic_write(self.outside, "ours", b"\x00data\xff")
        self.assertEqual(files.read_private(path), b"\x00data\xff")

    def test_refuses_symlink(self):
        """read_private refuses a symlink to a file of ours with StateError"""
        target = files.atomic_write(self.outside, "ours", b"data")
        link = os.path.join(self.outside, "link")
        os.symlink(target, link)
        with self.assertRaises(StateError) as cm:
            files.read_private(link)
        self.assertIn("symlink", str(cm.exception))

    def test_refuses_directory(self):
        """read_private refuses a directory with StateError"""
        with self.assertRaises(StateError):
            files.read_private(self.outside)

    def test_refuses_foreign_file(self):
        """read_private refuses a file owned by another uid, naming its owner (as root: chowned to 65534; else /etc/passwd)"""
        if IS_ROOT:
            path = files.atomic_write(self.outside, "theirs", b"data")
            os.chown(path, NOBODY, NOBODY)
            owner = NOBODY
        else:
            path, owner = "/etc/passwd", 0
        with self.assertRaises(StateError) as cm:
            files.read_private(path)
        self.assertEqual(str(cm.exception), f"refusing {path}: it is owned by uid {owner}, not uid {os.geteuid()}")

    def test_missing_file_raises_file_not_found(self):
        """read_private of a missing file raises FileNotFoundError (take turns it into 'no start record')"""
        with self.assertRaises(FileNotFoundError):
            files.read_private(os.path.join(self.outside, "absent"))

    def test_refuses_fifo_without_blocking(self):
        """read_private refuses a FIFO at once with StateError instead of waiting for a writer"""
        fifo = os.path.join(self.outside, "fifo")
        os.mkfifo(fifo, 0o600)
        outcome = []

        def reader():
            try:
                outcome.append(files.read_private(fifo))
            except BaseException as e:  # noqa: B902 - reported below
                outcome.append(e)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(1.0)
        blocked = thread.is_alive()
        if blocked:
            # Release the reader: opening the write end lets its open() return.
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(5.0)
        self.assertFalse(blocked, "read_private blocked on a FIFO for over a second")
        self.assertIsInstance(outcome[0], StateError)


class AtomicWriteTests(StateCase):
    """files.atomic_write: whole files, exact modes, no leftovers, no planted temp names."""

    def test_leaves_no_temp_files(self):
        """after many writes the directory holds only the final file, with the last content"""
        directory = self.slug_dir()
        for i in range(50):
            files.atomic_write(directory, "rec.json", b"%d" % i)
        self.assertEqual(os.listdir(directory), ["rec.json"])
        self.assertEqual(read(os.path.join(directory, "rec.json")), b"49")

    def test_mode_parameter_beats_umask(self):
        """the file gets exactly the requested mode whatever the umask"""
        directory = self.slug_dir()
        for umask, mode in ((0o000, 0o600), (0o077, 0o644), (0o022, 0o600)):
            with self.subTest(umask=oct(umask), mode=oct(mode)):
                old = os.umask(umask)
                try:
                    path = files.atomic_write(directory, "f", b"x", mode=mode)
                finally:
                    os.umask(old)
                self.assertEqual(mode_of(path), mode)

    def test_durable_write(self):
        """a durable write produces the same file and no leftovers"""
        directory = self.slug_dir()
        path = files.atomic_write(directory, "d", b"payload", durable=True)
        self.assertEqual(read(path), b"payload")
        self.assertEqual(os.listdir(directory), ["d"])

    def test_write_without_replace(self):
        """replace=False: the last content, no leftovers; a planted symlink is removed, its target untouched"""
        directory = self.slug_dir()
        for i in range(20):
            files.atomic_write(directory, "last.json", b"%d" % i, replace=False)
        self.assertEqual(os.listdir(directory), ["last.json"])
        self.assertEqual(read(os.path.join(directory, "last.json")), b"19")
        target = os.path.join(self.outside, "victim")
        with open(target, "wb") as f:
            f.write(b"theirs")
        os.unlink(os.path.join(directory, "last.json"))
        os.symlink(target, os.path.join(directory, "last.json"))
        path = files.atomic_write(directory, "last.json", b"ours", replace=False)
        self.assertFalse(os.path.islink(path))
        self.assertEqual((read(path), read(target)), (b"ours", b"theirs"))

    def test_precreated_temp_like_files_untouched(self):
        """files and links named like atomic_write's temporaries do not affect it and are left as they were"""
        directory = self.slug_dir()
        victim = self.victim()
        planted = {
            ".rec.json.tmp": "file",
            ".rec.json.000000000000.tmp": "file",
            ".rec.json.ffffffffffff.tmp": "link",
        }
        for name, kind in planted.items():
            path = os.path.join(directory, name)
            if kind == "link":
                os.symlink(victim, path)
            else:
                with open(path, "wb") as f:
                    f.write(b"planted")
        files.atomic_write(directory, "rec.json", b"real")
        self.assertEqual(read(os.path.join(directory, "rec.json")), b"real")
        self.assertEqual(sorted(os.listdir(directory)), sorted(list(planted) + ["rec.json"]))
        self.assertEqual(read(victim), b"precious\n")
        self.assertEqual(read(os.path.join(directory, ".rec.json.tmp")), b"planted")

    def test_colliding_temp_symlink_not_followed(self):
        """when the random temporary name is already a planted symlink, the write does not go through it"""
        directory = self.slug_dir()
        victim = self.victim()
        os.symlink(victim, os.path.join(directory, f".rec.json.{'00' * 6}.tmp"))
        # The temporary name is random; fixing os.urandom is the only way to make it collide.
        with mock.patch.object(files.os, "urandom", return_value=b"\x00" * 6):
            try:
                files.atomic_write(directory, "rec.json", b"attacker-controlled?")
            except StateError:
                pass  # refusing is fine; writing through the link is not
        self.assertEqual(read(victim), b"precious\n")
        self.assertTrue(os.path.islink(os.path.join(directory, f".rec.json.{'00' * 6}.tmp")))
        if os.path.exists(os.path.join(directory, "rec.json")):
            self.assertFalse(os.path.islink(os.path.join(directory, "rec.json")))

    def test_write_into_missing_directory(self):
        """a write into a directory that does not exist raises StateError naming it"""
        missing = os.path.join(self.root, "absent")
        with self.assertRaises(StateError) as cm:
            files.atomic_write(missing, "f", b"x")
        self.assertIn(missing, str(cm.exception))


if __name__ == "__main__":
    unittest.main()
