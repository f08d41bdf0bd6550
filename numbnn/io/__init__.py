"""Files: HDF5 training checkpoints, the shared helpers packed models (:mod:`numbnn.inference.format`) use,
and the images ``numbnn predict`` reads.

- :func:`save` / :func:`load` / :func:`load_checkpoint` / :func:`restore_rng`: checkpoints
  (layout in :mod:`numbnn.io.checkpoint`);
- :func:`write_nested` / :func:`read_nested`: exact, pickle-free storage of nested state dicts;
- :func:`atomic_h5`, :func:`open_numbnn_file`, :func:`cleanup_stale_temps`: write atomically, read
  defensively, and clear temporaries a killed writer left behind;
- :mod:`numbnn.io.images` (``read_images``): IDX files, ``.npy`` arrays and pictures (through Pillow), as
  untrusted input. Imported on its own, so loading a checkpoint never imports Pillow.
"""

from numbnn._atomic import cleanup_stale_temps
from numbnn.io.checkpoint import FORMAT, FORMAT_VERSION, Checkpoint, load, load_checkpoint, restore_rng, save
from numbnn.io.hdf5 import atomic_h5, open_numbnn_file, verify_envelope, write_header
from numbnn.io.nested import read_nested, write_nested

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "atomic_h5",
    "cleanup_stale_temps",
    "load",
    "load_checkpoint",
    "open_numbnn_file",
    "read_nested",
    "restore_rng",
    "save",
    "verify_envelope",
    "write_header",
    "write_nested",
]
