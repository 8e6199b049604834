"""Shim for old site installs that still run ``python setup.py install``; pyproject.toml is the source of truth."""

from setuptools import setup

setup()
