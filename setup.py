# The metadata lives in pyproject.toml; this shim is for `python setup.py develop` and for tools
# that look for a setup.py.
from setuptools import setup

setup()
