"""Settings: where each comes from (flags > environment > config file > defaults), the API key's
sources and their order, the checks on values and endpoints, and that the key is never shown.

Every config and key file is a real file in a temporary directory, read by ``config.load``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest

from seestack_systemd.settings import config, keys
from seestack_systemd.settings.config import Config, parse_endpoint
from seestack_systemd.errors import ConfigError

KEY = "sk-live-0123456789abcdefWXYZ"


class TempDirCase(unittest.TestCase):
    """A private temporary directory per test, with helpers to write config and key files."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="seestack-config-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name: str, text: str, mode: int = 0o600) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def conf(self, body: str, name: str = "seestack.conf", mode: int = 0o600) -> str:
        """A config file holding ``body`` under a [seestack] section."""
        return self.write(name, "[seestack]\n" + body, mode)

    def load(self, environ=None, flags=None, with_key=True) -> Config:
        return config.load(dict(environ or {}), flags, with_key=with_key)


class PrecedenceTests(TempDirCase):
    """flags > SEESTACK_* environment > config file > built-in defaults, per setting."""

    FILE = (
        "endpoint = https://file.example.com\n"
        "timeout = 7\n"
        "deadline = 17\n"
        "state_dir = /srv/file-state\n"
    )
    ENV = {
        "SEESTACK_ENDPOINT": "https://env.example.com",
        "SEESTACK_TIMEOUT": "8",
        "SEESTACK_DEADLINE": "18",
        "SEESTACK_STATE_DIR": "/srv/env-state",
    }
    FLAGS = {
        "endpoint": "https://flag.example.com",
        "timeout": "9",
        "deadline": "19",
        "state_dir": "/srv/flag-state",
    }

    def test_defaults(self):
        """with an empty config file and no environment every setting has its built-in default"""
        cfg = self.load({"SEESTACK_CONFIG": "/dev/null"})
        self.assertIsNone(cfg.endpoint)
        self.assertEqual(cfg.timeout, 5.0)
        self.assertEqual(cfg.deadline, 10.0)
        self.assertEqual(cfg.state_dir, "/run/seestack")
        self.assertEqual(cfg.data_dir, "/var/lib/seestack")
        self.assertEqual(cfg.spool_dir, "/var/lib/seestack/spool")
        self.assertFalse(cfg.allow_insecure_http)
        self.assertIsNone(cfg.api_key)
        self.assertEqual(cfg.api_key_source, "")
        self.assertEqual(cfg.sources, {})
        self.assertIsNone(cfg.config_file)

    def test_file_beats_defaults(self):
        """the config file beats the defaults for endpoint, timeout, deadline and state_dir"""
        path = self.conf(self.FILE)
        cfg = self.load({"SEESTACK_CONFIG": path})
        self.assertEqual(
            (cfg.endpoint, cfg.timeout, cfg.deadline, cfg.state_dir),
            ("https://file.example.com", 7.0, 17.0, "/srv/file-state"),
        )
        for name in ("endpoint", "timeout", "deadline", "state_dir"):
            self.assertEqual(cfg.sources[name], f"config file {path}")
        self.assertEqual(cfg.config_file, path)
        self.assertIsInstance(cfg.timeout, float)

    def test_environment_beats_file(self):
        """SEESTACK_* environment beats the config file for endpoint, timeout, deadline and state_dir"""
        env = dict(self.ENV, SEESTACK_CONFIG=self.conf(self.FILE))
        cfg = self.load(env)
        self.assertEqual(
            (cfg.endpoint, cfg.timeout, cfg.deadline, cfg.state_dir),
            ("https://env.example.com", 8.0, 18.0, "/srv/env-state"),
        )
        self.assertEqual(cfg.sources["timeout"], "environment $SEESTACK_TIMEOUT")
        self.assertEqual(cfg.sources["state_dir"], "environment $SEESTACK_STATE_DIR")

    def test_flags_beat_environment(self):
        """flags beat SEESTACK_* environment and the config file for endpoint, timeout, deadline and state_dir"""
        env = dict(self.ENV, SEESTACK_CONFIG=self.conf(self.FILE))
        cfg = self.load(env, self.FLAGS)
        self.assertEqual(
            (cfg.endpoint, cfg.timeout, cfg.deadline, cfg.state_dir),
            ("https://flag.example.com", 9.0, 19.0, "/srv/flag-state"),
        )
        for name in ("endpoint", "timeout", "deadline", "state_dir"):
            self.assertEqual(cfg.sources[name], "command line")

    def test_each_setting_from_its_own_source(self):
        """each setting takes the highest source that sets it: flag, environment, file or default"""
        env = {"SEESTACK_CONFIG": self.conf("timeout = 7\ndeadline = 17\n"), "SEESTACK_DEADLINE": "18"}
        cfg = self.load(env, {"endpoint": "https://flag.example.com", "timeout": None})
        self.assertEqual(cfg.endpoint, "https://flag.example.com")  # flag
        self.assertEqual(cfg.deadline, 18.0)  # environment over file
        self.assertEqual(cfg.timeout, 7.0)  # file (a None flag is no flag)
        self.assertEqual(cfg.state_dir, "/run/seestack")  # default
        self.assertNotIn("state_dir", cfg.sources)

    def test_empty_environment_value_is_unset(self):
        """an empty SEESTACK_TIMEOUT leaves the config file's value in force"""
        cfg = self.load({"SEESTACK_CONFIG": self.conf("timeout = 7\n"), "SEESTACK_TIMEOUT": ""})
        self.assertEqual(cfg.timeout, 7.0)

    def test_config_flag_beats_environment(self):
        """flags['config'] is read instead of $SEESTACK_CONFIG"""
        env_file = self.conf("timeout = 3\n", name="env.conf")
        flag_file = self.conf("timeout = 4\n", name="flag.conf")
        cfg = self.load({"SEESTACK_CONFIG": env_file}, {"config": flag_file})
        self.assertEqual(cfg.timeout, 4.0)
        self.assertEqual(cfg.config_file, flag_file)

    def test_spool_dir_follows_data_dir(self):
        """spool_dir defaults to DATA_DIR/spool and an explicit spool_dir wins"""
        cfg = self.load({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_DATA_DIR": "/srv/data"})
        self.assertEqual(cfg.spool_dir, "/srv/data/spool")
        cfg = self.load({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_DATA_DIR": "/srv/data", "SEESTACK_SPOOL_DIR": "/srv/q"})
        self.assertEqual(cfg.spool_dir, "/srv/q")

    def test_typed_values(self):
        """file values become bools and ints; yes/no, on/off and 1/0 are booleans"""
        for text, expected in (("yes", True), ("On", True), ("1", True), ("no", False), ("off", False), ("0", False)):
            with self.subTest(text=text):
                cfg = self.load({"SEESTACK_CONFIG": self.conf(f"allow_insecure_http = {text}\nspool_max_files = 5\n")})
                self.assertIs(cfg.allow_insecure_http, expected)
                self.assertEqual(cfg.spool_max_files, 5)
                self.assertIsInstance(cfg.spool_max_files, int)

    def test_unknown_setting_warns(self):
        """an unknown setting in the file is ignored with a warning naming it and the file"""
        path = self.conf("timeuot = 7\n")
        cfg = self.load({"SEESTACK_CONFIG": path})
        self.assertEqual(cfg.timeout, 5.0)
        self.assertTrue(any("timeuot" in w and path in w for w in cfg.warnings), cfg.warnings)

    def test_endpoint_parsed_uses_allow_insecure_http(self):
        """allow_insecure_http = yes in the file lets endpoint_parsed accept http:// to a remote host"""
        path = self.conf("endpoint = http://ingest.example.com\n")
        with self.assertRaises(ConfigError):
            self.load({"SEESTACK_CONFIG": path}).endpoint_parsed()
        path = self.conf("endpoint = http://ingest.example.com\nallow_insecure_http = yes\n")
        self.assertEqual(self.load({"SEESTACK_CONFIG": path}).endpoint_parsed().host, "ingest.example.com")

    def test_no_endpoint_says_where_to_set_one(self):
        """endpoint_parsed without an endpoint raises ConfigError naming SEESTACK_ENDPOINT"""
        with self.assertRaises(ConfigError) as cm:
            self.load({"SEESTACK_CONFIG": "/dev/null"}).endpoint_parsed()
        self.assertIn("SEESTACK_ENDPOINT", str(cm.exception))


class ApiKeyTests(TempDirCase):
    """The key's six sources, in order, and ``api_key_source`` naming the one used."""

    def sources(self):
        """Every source set at once, each with a different key; returns (environ, flags, paths)."""
        flag_key = self.write("flag.key", "key-from-flag-file-0001\n")
        env_key = self.write("env.key", "key-from-env-file-0003\n")
        creds = os.path.join(self.dir, "creds")
        os.mkdir(creds, 0o700)
        with open(os.path.join(creds, keys.CREDENTIAL_NAME), "w") as f:
            f.write("key-from-credential-0004\n")
        file_key = self.write("file.key", "key-from-config-api-key-file-0005\n")
        conf = self.conf(f"api_key_file = {file_key}\n", name="with-file.conf")
        environ = {
            "SEESTACK_CONFIG": conf,
            "SEESTACK_API_KEY": "key-from-env-0002",
            "SEESTACK_API_KEY_FILE": env_key,
            "CREDENTIALS_DIRECTORY": creds,
        }
        return environ, {"api_key_file": flag_key}, dict(flag=flag_key, env=env_key, file=file_key, conf=conf)

    def test_precedence_chain(self):
        """flag key file > SEESTACK_API_KEY > SEESTACK_API_KEY_FILE > credential > api_key_file > api_key"""
        environ, flags, paths = self.sources()
        cfg = self.load(environ, flags)
        self.assertEqual(cfg.api_key, "key-from-flag-file-0001")
        self.assertEqual(cfg.api_key_source, f"--api-key-file {paths['flag']}")

        cfg = self.load(environ)
        self.assertEqual(cfg.api_key, "key-from-env-0002")
        self.assertEqual(cfg.api_key_source, "environment $SEESTACK_API_KEY")

        del environ["SEESTACK_API_KEY"]
        cfg = self.load(environ)
        self.assertEqual(cfg.api_key, "key-from-env-file-0003")
        self.assertIn(paths["env"], cfg.api_key_source)
        self.assertIn("$SEESTACK_API_KEY_FILE", cfg.api_key_source)

        del environ["SEESTACK_API_KEY_FILE"]
        cfg = self.load(environ)
        self.assertEqual(cfg.api_key, "key-from-credential-0004")
        self.assertEqual(cfg.api_key_source, f"systemd credential {keys.CREDENTIAL_NAME}")

        del environ["CREDENTIALS_DIRECTORY"]
        cfg = self.load(environ)
        self.assertEqual(cfg.api_key, "key-from-config-api-key-file-0005")
        self.assertIn(paths["file"], cfg.api_key_source)
        self.assertIn(f"api_key_file in {paths['conf']}", cfg.api_key_source)

        environ["SEESTACK_CONFIG"] = conf = self.conf("api_key = key-inline-0006\n", name="inline.conf")
        cfg = self.load(environ)
        self.assertEqual(cfg.api_key, "key-inline-0006")
        self.assertEqual(cfg.api_key_source, f"api_key in {conf}")

        cfg = self.load({"SEESTACK_CONFIG": "/dev/null"})
        self.assertEqual((cfg.api_key, cfg.api_key_source), (None, ""))

    def test_credential_directory_without_the_credential(self):
        """a CREDENTIALS_DIRECTORY without seestack-api-key falls through to the config file"""
        creds = os.path.join(self.dir, "creds")
        os.mkdir(creds, 0o700)
        cfg = self.load({"CREDENTIALS_DIRECTORY": creds, "SEESTACK_CONFIG": self.conf("api_key = inline-key-1\n")})
        self.assertEqual(cfg.api_key, "inline-key-1")

    def test_key_file_stripped(self):
        """a key file's trailing newline and CRLF are stripped"""
        path = self.write("k", "  sk-abc-123\r\n")
        cfg = self.load({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY_FILE": path})
        self.assertEqual(cfg.api_key, "sk-abc-123")

    def test_exposed_key_file_warns(self):
        """a key file of mode 0644 gives a warning naming the file and 'chmod 600'; 0600 gives none"""
        path = self.write("k", KEY + "\n", mode=0o644)
        cfg = self.load({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY_FILE": path})
        self.assertEqual(cfg.api_key, KEY)
        self.assertTrue(any(path in w and f"chmod 600 {path}" in w for w in cfg.warnings), cfg.warnings)
        os.chmod(path, 0o600)
        cfg = self.load({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY_FILE": path})
        self.assertEqual(cfg.warnings, [])

    def test_exposed_config_file_warns(self):
        """a config file of mode 0644 gives a warning naming the file and 'chmod 600'; 0600 gives none"""
        path = self.conf(f"api_key = {KEY}\n", mode=0o644)
        cfg = self.load({"SEESTACK_CONFIG": path})
        self.assertTrue(any(f"chmod 600 {path}" in w for w in cfg.warnings), cfg.warnings)
        self.assertFalse(any(KEY in w for w in cfg.warnings))
        os.chmod(path, 0o640)  # group-readable is exposed too
        self.assertTrue(self.load({"SEESTACK_CONFIG": path}).warnings)
        os.chmod(path, 0o600)
        self.assertEqual(self.load({"SEESTACK_CONFIG": path}).warnings, [])

    def test_readable_config_without_key_is_quiet(self):
        """a 0644 config file that names a private key file (no api_key = line) gives no warning"""
        key = self.write("k", KEY + "\n")
        path = self.conf(f"api_key_file = {key}\n# api_key = not here\n", mode=0o644)
        cfg = self.load({"SEESTACK_CONFIG": path})
        self.assertEqual(cfg.api_key, KEY)
        self.assertEqual(cfg.warnings, [])
        self.write(os.path.basename(path), f"[seestack]\napi_key: {KEY}\n", mode=0o644)
        self.assertTrue(any(f"chmod 600 {path}" in w for w in config.load({"SEESTACK_CONFIG": path},
                                                                          with_key=False).warnings))

    def test_flag_key_file_warns_too(self):
        """a 0644 key file named by flags['api_key_file'] warns like any other key file"""
        path = self.write("k", KEY, mode=0o644)
        cfg = self.load({"SEESTACK_CONFIG": "/dev/null"}, {"api_key_file": path})
        self.assertTrue(any(f"chmod 600 {path}" in w for w in cfg.warnings), cfg.warnings)

    def test_credential_does_not_warn(self):
        """a systemd credential is not warned about whatever its mode (systemd restricts it)"""
        creds = os.path.join(self.dir, "creds")
        os.mkdir(creds, 0o755)
        cred = os.path.join(creds, keys.CREDENTIAL_NAME)
        with open(cred, "w") as f:
            f.write(KEY)
        os.chmod(cred, 0o644)
        cfg = self.load({"SEESTACK_CONFIG": "/dev/null", "CREDENTIALS_DIRECTORY": creds})
        self.assertEqual(cfg.api_key, KEY)
        self.assertEqual(cfg.warnings, [])

    def test_both_api_key_and_api_key_file(self):
        """a config file with both api_key and api_key_file is a ConfigError naming the file"""
        key_file = self.write("k", KEY)
        path = self.conf(f"api_key = {KEY}\napi_key_file = {key_file}\n")
        with self.assertRaises(ConfigError) as cm:
            self.load({"SEESTACK_CONFIG": path})
        self.assertIn(path, str(cm.exception))
        self.assertIn("api_key_file", str(cm.exception))
        self.assertNotIn(KEY, str(cm.exception))

    def test_empty_key_file(self):
        """an empty or blank key file is a ConfigError naming the file, from every file source"""
        empty = self.write("empty.key", "\n")
        cases = {
            "flag": ({"SEESTACK_CONFIG": "/dev/null"}, {"api_key_file": empty}),
            "env": ({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY_FILE": empty}, None),
            "file": ({"SEESTACK_CONFIG": self.conf(f"api_key_file = {empty}\n")}, None),
        }
        for name, (environ, flags) in cases.items():
            with self.subTest(source=name), self.assertRaises(ConfigError) as cm:
                self.load(environ, flags)
            self.assertIn(empty, str(cm.exception))
            self.assertIn("one line", str(cm.exception))

    def test_two_line_key_file(self):
        """a key file holding two lines is a ConfigError that does not echo its content"""
        path = self.write("k", KEY + "\nsecond-line\n")
        with self.assertRaises(ConfigError) as cm:
            self.load({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY_FILE": path})
        self.assertIn(path, str(cm.exception))
        self.assertNotIn(KEY, str(cm.exception))

    def test_missing_key_file(self):
        """a key file that does not exist is a ConfigError naming it and its source"""
        path = os.path.join(self.dir, "nope.key")
        with self.assertRaises(ConfigError) as cm:
            self.load({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY_FILE": path})
        self.assertIn(path, str(cm.exception))
        self.assertIn("$SEESTACK_API_KEY_FILE", str(cm.exception))

    def test_without_key_reads_no_key(self):
        """with_key=False reads no key source: a missing key file is no error and api_key stays None"""
        missing = os.path.join(self.dir, "nope.key")
        environ = {"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY_FILE": missing, "SEESTACK_API_KEY": ""}
        with self.assertRaises(ConfigError):
            self.load(environ)  # the same environment with the key: the file is read
        cfg = self.load(environ, {"api_key_file": missing}, with_key=False)
        self.assertIsNone(cfg.api_key)
        self.assertEqual(cfg.api_key_source, "")

    def test_without_key_still_reads_state_dir(self):
        """with_key=False still takes state_dir from the config file, and the environment still beats it"""
        path = self.conf("state_dir = /srv/st\napi_key_file = /nonexistent/key\n")
        self.assertEqual(self.load({"SEESTACK_CONFIG": path}, with_key=False).state_dir, "/srv/st")
        cfg = self.load({"SEESTACK_CONFIG": path, "SEESTACK_STATE_DIR": "/srv/env"}, with_key=False)
        self.assertEqual(cfg.state_dir, "/srv/env")

    def test_require_key(self):
        """require_key returns the key, or raises ConfigError saying where to put one"""
        self.assertEqual(self.load({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY": KEY}).require_key(), KEY)
        with self.assertRaises(ConfigError) as cm:
            self.load({"SEESTACK_CONFIG": "/dev/null"}).require_key()
        self.assertIn("api_key_file", str(cm.exception))

    def test_key_with_line_break_refused_from_every_source(self):
        """an API key containing a line break is a ConfigError from the environment and the config file too"""
        cases = {
            "env": {"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY": "sk-abc\r\nX-Injected: 1"},
            "file": {"SEESTACK_CONFIG": self.conf("api_key = sk-abc\n  X-Injected: 1\n")},
        }
        for name, environ in cases.items():
            with self.subTest(source=name), self.assertRaises(ConfigError):
                self.load(environ)


class BadValueTests(TempDirCase):
    """A bad value is a ConfigError naming the file, the key and what is expected."""

    CASES = (
        ("timeout = ten", "timeout", "number of seconds"),
        ("timeout = 0", "timeout", "number of seconds"),
        ("deadline = -1", "deadline", "number of seconds"),
        ("allow_insecure_http = maybe", "allow_insecure_http", "yes or no"),
        ("spool_max_files = -3", "spool_max_files", "whole number"),
        ("spool_max_bytes = 1.5", "spool_max_bytes", "whole number"),
        ("success_message = all", "success_message", "last-line or none"),
        ("state_dir = run/seestack", "state_dir", "absolute path"),
        ("data_dir = ./data", "data_dir", "absolute path"),
    )

    def test_each_bad_value(self):
        """each bad file value raises ConfigError naming the file, the key, the value and what is expected"""
        for line, key, expected in self.CASES:
            with self.subTest(line=line):
                path = self.conf(line + "\n")
                with self.assertRaises(ConfigError) as cm:
                    self.load({"SEESTACK_CONFIG": path})
                message = str(cm.exception)
                self.assertIn(path, message)
                self.assertIn(key, message)
                self.assertIn(line.split(" = ")[1], message)
                self.assertIn(expected, message)

    def test_bad_environment_value_names_the_variable(self):
        """a bad SEESTACK_TIMEOUT raises ConfigError naming $SEESTACK_TIMEOUT"""
        with self.assertRaises(ConfigError) as cm:
            self.load({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_TIMEOUT": "ten"})
        self.assertIn("$SEESTACK_TIMEOUT", str(cm.exception))
        self.assertIn("number of seconds", str(cm.exception))

    def test_bad_flag_value_names_the_option(self):
        """a bad flag value raises ConfigError naming --the-option"""
        with self.assertRaises(ConfigError) as cm:
            self.load({"SEESTACK_CONFIG": "/dev/null"}, {"state_dir": "relative"})
        self.assertIn("--state-dir", str(cm.exception))

    def test_good_value_is_not_refused(self):
        """the accepted forms of the same keys load without error"""
        path = self.conf(
            "timeout = 2.5\ndeadline = 3600\nallow_insecure_http = no\nspool_max_files = 0\n"
            "success_message = none\nstate_dir = /run/x\n"
        )
        cfg = self.load({"SEESTACK_CONFIG": path})
        self.assertEqual((cfg.timeout, cfg.deadline, cfg.spool_max_files, cfg.success_message), (2.5, 3600.0, 0, "none"))

    def test_empty_path_value(self):
        """an empty data_dir or state_dir in the file is a ConfigError or the default, never a crash or None"""
        for key in ("data_dir", "state_dir"):
            with self.subTest(key=key):
                path = self.conf(f"{key} =\n")
                try:
                    cfg = self.load({"SEESTACK_CONFIG": path})
                except ConfigError:
                    continue
                self.assertIsInstance(getattr(cfg, key), str)
                self.assertTrue(getattr(cfg, key).startswith("/"))


class ConfigFileTests(TempDirCase):
    """Finding and parsing the config file."""

    def test_missing_explicit_file(self):
        """a config file named by SEESTACK_CONFIG or flags['config'] that does not exist is a ConfigError"""
        missing = os.path.join(self.dir, "missing.conf")
        for environ, flags in (({"SEESTACK_CONFIG": missing}, None), ({}, {"config": missing})):
            with self.subTest(flags=flags), self.assertRaises(ConfigError) as cm:
                self.load(environ, flags)
            self.assertIn(missing, str(cm.exception))
            self.assertIn("does not exist", str(cm.exception))

    def test_missing_default_file(self):
        """a missing default config file (/etc/seestack/seestack.conf) is not an error"""
        if os.path.lexists(config.DEFAULT_CONFIG_FILE):
            self.skipTest(f"{config.DEFAULT_CONFIG_FILE} exists on this machine")
        cfg = self.load({"SEESTACK_API_KEY": KEY})
        self.assertIsNone(cfg.config_file)
        self.assertEqual(cfg.timeout, 5.0)
        self.assertEqual(cfg.api_key, KEY)

    def test_unreadable_file(self):
        """a config file that is a directory is a ConfigError naming it"""
        with self.assertRaises(ConfigError) as cm:
            self.load({"SEESTACK_CONFIG": self.dir})
        self.assertIn(self.dir, str(cm.exception))

    def test_no_seestack_section(self):
        """a file whose settings are under another section is a ConfigError asking for [seestack]"""
        path = self.write("c.conf", "[main]\ntimeout = 7\n")
        with self.assertRaises(ConfigError) as cm:
            self.load({"SEESTACK_CONFIG": path})
        self.assertIn(path, str(cm.exception))
        self.assertIn("[seestack]", str(cm.exception))

    def test_no_section_header(self):
        """a file with settings but no section line is a ConfigError asking for [seestack]"""
        path = self.write("c.conf", "timeout = 7\n")
        with self.assertRaises(ConfigError) as cm:
            self.load({"SEESTACK_CONFIG": path})
        self.assertIn("[seestack]", str(cm.exception))

    def test_comments_only_file(self):
        """a file holding only comments loads as the defaults"""
        cfg = self.load({"SEESTACK_CONFIG": self.write("c.conf", "# nothing yet\n; really\n")})
        self.assertEqual(cfg.timeout, 5.0)

    def test_parse_error_does_not_echo_the_key(self):
        """the error for a malformed file never repeats the API key written in it"""
        for text in (f"api_key = {KEY}\n[seestack]\n", f"[seestack]\napi_key = {KEY}\napi_key = {KEY}\n"):
            with self.subTest(text=text[:20]):
                with self.assertRaises(ConfigError) as cm:
                    self.load({"SEESTACK_CONFIG": self.write("c.conf", text)})
                self.assertNotIn(KEY, str(cm.exception))


    def test_parse_errors_name_the_line(self):
        """a stray line, a setting given twice, a second [seestack], an indented line (INI's continuation), no
        section line: one line naming the file's line, never its text"""
        for text, said in ((f"[seestack]\ntimeout = 7\n{KEY}\n", ", line 3 is not a 'name = value' setting"),
                           ("[seestack]\ntimeout = 7\ntimeout = 8\n", ", line 3: timeout is set twice in [seestack]"),
                           ("[seestack]\n[seestack]\n", ", line 2: a second [seestack] section"),
                           (f"[seestack]\nendpoint = https://x.example\n   {KEY}\n",
                            ", line 3 starts with a space or tab"),
                           (f"[seestack]\ntimeout = 3\n\t{KEY}\n", ", line 3 starts with a space or tab"),
                           ("timeout = 7\n", ", line 1: settings must follow a [seestack] line")):
            with self.subTest(said=said):
                path = self.write("c.conf", text)
                with self.assertRaises(ConfigError) as cm:
                    self.load({"SEESTACK_CONFIG": path})
                self.assertEqual(str(cm.exception)[:len(path) + len(said)], path + said)
                self.assertNotIn("'", str(cm.exception).replace("'name = value'", ""))
                self.assertNotIn(KEY, str(cm.exception))
                self.assertNotIn("\n", str(cm.exception))


class EndpointTests(unittest.TestCase):
    """parse_endpoint: https anywhere, http to loopback only (unless allowed), no credentials."""

    def test_https(self):
        """an https URL parses to scheme, lowercased host, port 443 and no path"""
        ep = parse_endpoint("https://Ingest.Example.com")
        self.assertEqual((ep.scheme, ep.host, ep.port, ep.path), ("https", "ingest.example.com", 443, ""))
        self.assertEqual(str(ep), "https://ingest.example.com:443")

    def test_http_loopback(self):
        """http to 127.0.0.1, 127.x.y.z, localhost and [::1] is accepted, with its port"""
        for url, host, port in (
            ("http://127.0.0.1:8080", "127.0.0.1", 8080),
            ("http://127.10.0.3", "127.10.0.3", 80),
            ("http://localhost:9", "localhost", 9),
            ("http://[::1]:8443", "::1", 8443),
            ("http://[::1]", "::1", 80),
        ):
            with self.subTest(url=url):
                ep = parse_endpoint(url)
                self.assertEqual((ep.scheme, ep.host, ep.port), ("http", host, port))
                self.assertTrue(ep.is_loopback)
        self.assertEqual(str(parse_endpoint("http://[::1]:8443")), "http://[::1]:8443")

    def test_http_remote_refused(self):
        """http to a non-loopback host is refused unless allow_insecure_http, naming that setting"""
        for url in ("http://example.com", "http://127.0.0.1.example.com", "http://localhost.example.com",
                    "http://10.0.0.1:8080", "http://128.0.0.1"):
            with self.subTest(url=url):
                with self.assertRaises(ConfigError) as cm:
                    parse_endpoint(url)
                self.assertIn("allow_insecure_http", str(cm.exception))
                self.assertEqual(parse_endpoint(url, allow_insecure_http=True).scheme, "http")

    def test_credentials_refused(self):
        """a URL with user:password@ or user@ is refused even over https"""
        for url in ("https://user:secret@example.com", "https://sk-abc@example.com/v", "http://u:p@127.0.0.1"):
            with self.subTest(url=url), self.assertRaises(ConfigError) as cm:
                parse_endpoint(url)
            self.assertIn("api_key_file", str(cm.exception))

    def test_credentials_not_echoed(self):
        """the error for a URL with credentials does not repeat the secret"""
        for url in ("https://user:s3cr3t-pw@example.com", "https://user:s3cr3t/pw@example.com"):
            with self.subTest(url=url), self.assertRaises(ConfigError) as cm:
                parse_endpoint(url)
            self.assertNotIn("s3cr3t", str(cm.exception))

    def test_bad_port(self):
        """a non-numeric, zero or too large port is a ConfigError naming the port"""
        for url, port in (("https://example.com:abc", "abc"), ("https://example.com:0", "0"),
                          ("https://example.com:65536", "65536"), ("https://[::1]:x", "x")):
            with self.subTest(url=url), self.assertRaises(ConfigError) as cm:
                parse_endpoint(url)
            self.assertIn("bad port", str(cm.exception))
            self.assertIn(repr(port), str(cm.exception))

    def test_not_a_url(self):
        """a value without http:// or https:// or without a host is a ConfigError"""
        for url in ("example.com", "ftp://example.com", "https://", "https:///path"):
            with self.subTest(url=url), self.assertRaises(ConfigError):
                parse_endpoint(url)

    def test_path_kept_without_trailing_slash(self):
        """a base path is kept without its trailing slash; a lone slash means no path"""
        self.assertEqual(parse_endpoint("https://example.com/").path, "")
        self.assertEqual(parse_endpoint("https://example.com/seestack/").path, "/seestack")
        self.assertEqual(parse_endpoint("https://example.com:8443/a/b").path, "/a/b")
        self.assertEqual(parse_endpoint("  https://example.com/a/  ").path, "/a")


class SecrecyTests(TempDirCase):
    """The key is never shown whole: not by key_hint, not by repr."""

    def test_key_hint(self):
        """key_hint shows the source and the last four characters, never the whole key"""
        cfg = self.load({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY": KEY})
        hint = cfg.key_hint()
        self.assertNotIn(KEY, hint)
        self.assertIn(KEY[-4:], hint)
        self.assertIn("$SEESTACK_API_KEY", hint)
        short = self.load({"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY": "abcdefgh"})
        self.assertNotIn("efgh", short.key_hint())  # too short to give away half of it
        self.assertIn("(set)", short.key_hint())
        self.assertEqual(self.load({"SEESTACK_CONFIG": "/dev/null"}).key_hint(), "(not set)")

    def test_repr_hides_key_from_every_source(self):
        """repr() and str() of a Config never contain the key, whatever its source"""
        key_file = self.write("k", KEY + "\n")
        environs = {
            "env": {"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY": KEY},
            "env file": {"SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY_FILE": key_file},
            "file api_key": {"SEESTACK_CONFIG": self.conf(f"api_key = {KEY}\n", mode=0o644)},
            "file api_key_file": {"SEESTACK_CONFIG": self.conf(f"api_key_file = {key_file}\n", name="b.conf")},
        }
        for name, environ in environs.items():
            with self.subTest(source=name):
                cfg = self.load(environ)
                self.assertEqual(cfg.api_key, KEY)
                self.assertNotIn(KEY, repr(cfg))
                self.assertNotIn(KEY, str(cfg))
                self.assertNotIn(KEY, cfg.api_key_source)
                self.assertFalse(any(KEY in w for w in cfg.warnings))


if __name__ == "__main__":
    unittest.main()


class NetworkSettings(unittest.TestCase):
    """Settings that would only fail when sending are refused when loading, naming the setting."""

    def load(self, **env):
        return config.load(dict({"SEESTACK_CONFIG": self.path, "SEESTACK_API_KEY": "k" * 12}, **env))

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, "seestack.conf")

    def write(self, text):
        with open(self.path, "w") as f:
            f.write("[seestack]\n" + text)
        os.chmod(self.path, 0o600)

    def test_missing_ca_file(self):
        """a ca_file that does not exist is a ConfigError naming ca_file"""
        self.write("ca_file = /nonexistent/ca.pem\n")
        with self.assertRaises(ConfigError) as cm:
            self.load()
        self.assertIn("ca_file /nonexistent/ca.pem", str(cm.exception))

    def test_bad_proxy(self):
        """an https_proxy that is no URL, or holds credentials, is a ConfigError naming https_proxy"""
        for value, words in (("proxy:3128", "https_proxy 'proxy:3128' is not a URL"),
                             ("http://user:pw@proxy:3128", "https_proxy: the URL holds credentials")):
            with self.subTest(value):
                self.write(f"https_proxy = {value}\n")
                with self.assertRaises(ConfigError) as cm:
                    self.load()
                self.assertIn(words, str(cm.exception))
                self.assertNotIn("pw@", str(cm.exception))

    def test_list_reads_data_dir(self):
        """with_key=False (list) still reads every setting of the file; start reads only the two directories"""
        self.write("data_dir = /srv/seestack-data\ntimeout = 7\n")
        self.assertEqual(config.load({"SEESTACK_CONFIG": self.path}, with_key=False).timeout, 7.0)
        quick = config.load({"SEESTACK_CONFIG": self.path}, with_key=False, dirs_only=True)
        self.assertEqual((quick.data_dir, quick.timeout), ("/srv/seestack-data", 5.0))
