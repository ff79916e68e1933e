"""The settings table is the one place a setting is named: the man page and the shipped
config file document exactly its rows, with their environment variables and defaults,
and Config holds exactly its values."""

from __future__ import annotations

import os
import re
import unittest

from seestack_systemd.files import _SET_ELSEWHERE
from seestack_systemd.settings import paths
from seestack_systemd.settings.config import Config
from seestack_systemd.settings.table import BY_NAME, DROPIN, FLAGS, IN_FILE, TABLE, VALUES, Setting

from .. import docs_extract as docs

CONFFILE = os.path.join(docs.ROOT, "packaging", "seestack.conf")


def shown_default(setting: Setting) -> str:
    """A default as the documents write it: yes/no, 5 not 5.0."""
    value = setting.default
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def man_config_keys() -> dict[str, tuple[str, str]]:
    """The man page's "The config file" list: key -> (its tag line, its text as read)."""
    with open(docs.MANPAGE, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = lines.index(".SS The config file")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith((".SS", ".SH")))
    entries: dict[str, tuple[str, str]] = {}
    body = lines[start + 1:end]
    for i, line in enumerate(body):
        if line == ".TP":
            tag = body[i + 1]
            text = []
            for following in body[i + 2:]:
                if following in (".TP", ".PP"):
                    break
                text.append(following)
            entries[docs.plain([tag]).split()[0]] = (docs.unroff(tag), docs.plain(text))
    return entries


class SettingsTable(unittest.TestCase):
    def test_config_holds_the_values(self):
        """Config's typed attributes are exactly the table's values, in its order"""
        self.assertEqual(list(Config.__annotations__), list(VALUES))

    def test_man_page_config_file_keys(self):
        """the man page lists each key the config file takes, with its variable iff it has one, and its default"""
        entries = man_config_keys()
        self.assertEqual(sorted(entries), sorted(IN_FILE))
        for name, (tag, text) in entries.items():
            setting = BY_NAME[name]
            with self.subTest(name):
                if setting.kind != "source":  # the key's own variables are in "The API key"
                    self.assertEqual(re.findall(r"\$(SEESTACK_\w+)", tag), [setting.env] if setting.env else [])
                if setting.default not in (None, ""):
                    self.assertRegex(text, rf"Default: {re.escape(shown_default(setting))}\b")

    def test_man_page_environment(self):
        """ENVIRONMENT names every variable of the table, and no other SEESTACK_ one"""
        environment = docs.top_sections()["ENVIRONMENT"]
        named = {line.split()[1] for line in environment if line.startswith(".B SEESTACK_")}
        self.assertEqual(named, {s.env for s in TABLE if s.env})

    def test_readme_table(self):
        """the README's table has a row per setting: the key (the file's own as "(config file)"), its variable, its default"""
        with open(docs.README, encoding="utf-8") as f:
            rows = re.findall(r"^\| (`[a-z_]+`|\(config file\)) \| `?([A-Z_]+|none)`? \| ([^|]+) \|", f.read(), re.M)
        shown = {("config" if key == "(config file)" else key.strip("`")): (env, default.strip()) for key, env, default
                 in rows}
        self.assertEqual(sorted(shown), sorted(BY_NAME))
        for name, (env, default) in shown.items():
            setting = BY_NAME[name]
            with self.subTest(name):
                self.assertEqual(env, setting.env or "none")
                if setting.default not in (None, ""):
                    self.assertEqual(default.strip("`"), shown_default(setting))

    def test_shipped_config_file(self):
        """packaging/seestack.conf shows each key the file takes, commented out, at its default"""
        with open(CONFFILE, encoding="utf-8") as f:
            shown = dict(re.findall(r"^# ([a-z_]+) =[ ]?(.*)$", f.read(), re.M))
        self.assertEqual(sorted(shown), sorted(IN_FILE))
        for name, value in shown.items():
            setting = BY_NAME[name]
            if setting.kind != "source" and setting.default not in (None, ""):
                self.assertEqual(value, shown_default(setting), name)

    def test_directory_errors_name_the_right_variables(self):
        """the hint a directory error ends with names each setting's own variable and flag"""
        for hint in _SET_ELSEWHERE.values():
            for name, how in re.findall(r"([a-z_]+) \(([^)]*)\)", hint):
                with self.subTest(hint):
                    setting = BY_NAME[name]
                    self.assertEqual(how, ", ".join([setting.env, *[f for f, n in FLAGS.items() if n == name]]))

    def test_user_defaults_as_help_shows_them(self):
        """a user's default paths, as paths.defaults computes them, are those the table (and so --help) names"""
        environ = {"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1000"}
        computed = paths.defaults(environ, True, 1000)
        for setting in TABLE:
            if setting.user_default:
                with self.subTest(setting.name):
                    shown = setting.user_default.replace("~", "/home/u").replace("$XDG_RUNTIME_DIR", "/run/user/1000")
                    self.assertEqual(computed[setting.name], shown)
        self.assertEqual(sorted(computed), sorted(s.name for s in TABLE if s.user_default))

    def test_drop_in_carries_flags_only(self):
        """the drop-in writes only settings a hook takes as flags, and never the key itself"""
        self.assertTrue(set(DROPIN) <= set(FLAGS.values()))
        self.assertNotIn("api_key", FLAGS.values())
        self.assertFalse(BY_NAME["api_key"].dropin)


if __name__ == "__main__":
    unittest.main()
