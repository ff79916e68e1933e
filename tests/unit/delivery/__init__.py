"""Tests of seestack_systemd.delivery."""
