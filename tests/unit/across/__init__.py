"""Suites that cross the subpackages: faults, trust, the first hour, durability, docs and the package's shape."""
