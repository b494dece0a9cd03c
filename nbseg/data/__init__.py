"""Datasets, patch sampling, augmentation and splits."""
from .dataset import Dataset, DataError, Sample, load_dataset
from .sample import SAMPLES, sample

__all__ = ["Dataset", "DataError", "Sample", "load_dataset", "sample", "SAMPLES"]
