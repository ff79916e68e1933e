"""Tests of seestack_systemd.receiver."""
