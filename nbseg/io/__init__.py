"""Reading images and masks into ``C[Z]YX`` with their pixel sizes, and writing OME-TIFF.

:mod:`.images` is the public API (axes, channels), :mod:`.names` pairs files by stem; :mod:`.readers` holds one
reader per file format.
"""
from .images import Image, PairingError, by_stem, file_stem, files_by_stem, image_files, is_image_file, read_image, read_mask, write_ome_tiff
from .readers import IMAGE_SUFFIXES, ImageReadError

__all__ = ["IMAGE_SUFFIXES", "Image", "ImageReadError", "PairingError", "by_stem", "file_stem", "files_by_stem", "image_files", "is_image_file",
           "read_image", "read_mask", "write_ome_tiff"]
