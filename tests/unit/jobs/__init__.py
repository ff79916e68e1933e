"""Tests of seestack_systemd.jobs."""
