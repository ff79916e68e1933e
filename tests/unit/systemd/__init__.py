"""Tests of seestack_systemd.systemd."""
