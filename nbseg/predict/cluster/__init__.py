"""Prediction on a dask cluster, for many or very large images: the wing of :mod:`nbseg.predict` that
nothing else in it needs.

- :mod:`.connect`: which cluster (a local one, SLURM jobs through dask-jobqueue, a running scheduler).
- :mod:`.distributed`: :func:`predict_on_cluster`, the driver: plans the images, hands them (or their
  blocks) out, collects and stitches the results into the files :func:`nbseg.predict.predict_files` writes.
- :mod:`.block_size`: how large the blocks are: a given block rounded up to whole tiles, or one chosen
  from the tile and a worker's memory bound.
- :mod:`.blocks`: cutting an image too large for one worker into blocks with halos, and joining the
  objects that cross their faces.
- :mod:`.workers`: what each worker runs (a whole image, one block, its face pairs, relabelling, tables).
"""
from .connect import ClusterError, connect, slurm_settings
from .distributed import predict_on_cluster

__all__ = ["ClusterError", "connect", "predict_on_cluster", "slurm_settings"]
