"""Tests of seestack_systemd.settings."""
