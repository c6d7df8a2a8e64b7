"""The harness's data pipeline: datasets held in memory as uint8, device-side augmentation,
stateless resumable batch order, CIFAR download, ImageFolder trees, subsets and index files.

Entry point: :func:`build_data`. Building blocks: :class:`ArrayData`, :class:`MemoryLoader`,
:class:`LazyLoader`, :func:`load_cifar`, :func:`load_folder_to_memory`, :func:`per_class_subset`.
"""

from .arrays import ArrayData
from .build import NAMES, DataBundle, build_data, build_data_from_config
from .cifar import CIFAR, ChecksumError, download_cifar, download_file, load_cifar, safe_extract_tar
from .folder import IMG_EXTENSIONS, CorruptImageError, FolderDataset, load_folder_to_memory, scan_folder
from .lazy import ArrayDataset, LazyLoader
from .loader import MemoryLoader
from .norm import NORMALIZATION, NormStats, dataset_stats, denormalize, get_stats, normalize
from .order import derive_seed, plan_epoch
from .subset import per_class_subset, read_index_file, read_index_stats, write_index_file

__all__ = [
    "ArrayData", "ArrayDataset", "CIFAR", "ChecksumError", "CorruptImageError", "DataBundle", "FolderDataset",
    "IMG_EXTENSIONS", "LazyLoader", "MemoryLoader", "NAMES", "NORMALIZATION", "NormStats", "build_data",
    "build_data_from_config",
    "dataset_stats", "denormalize", "derive_seed", "download_cifar", "download_file", "get_stats",
    "load_cifar", "load_folder_to_memory", "normalize", "per_class_subset", "plan_epoch", "read_index_file",
    "read_index_stats", "safe_extract_tar", "scan_folder", "write_index_file",
]
