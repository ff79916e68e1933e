"""Tests of seestack_systemd.cli."""
