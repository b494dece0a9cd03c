"""What pyproject.toml cannot say: the notebooks live in notebooks/ at the repository's top (where GitHub,
Colab and Binder open them) and are installed inside the package as nbseg/notebooks, so that an installed
nbseg can copy them out (``nbseg notebooks DEST``; nbseg.resources)."""
from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["nbseg", "nbseg.*"]), "nbseg.notebooks"],
      package_dir={"nbseg.notebooks": "notebooks"})
