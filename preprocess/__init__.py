"""Stage 1: decode videos with ffmpeg into HDF5 frame stores (v3s-prep)."""
