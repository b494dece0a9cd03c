"""nbseg: segment 2D and 3D microscopy images with a U-Net, from notebooks, Python or the command line."""

__version__ = "0.1.0"
