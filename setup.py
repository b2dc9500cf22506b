"""Package discovery: recnas lives under platform/, its search spaces at the top.

``search_spaces/`` is mapped to the package ``recnas.search_spaces`` (see
``package-dir`` in pyproject.toml) so that the specs ship inside the wheel.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages("platform"), "recnas.search_spaces"])
