"""Numba kernels: arrays in, arrays out (compensation, transforms, gate geometry). Imports nothing of ours."""
