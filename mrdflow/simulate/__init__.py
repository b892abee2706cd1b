"""Synthetic bone marrow and blood FCS files with per-event ground truth."""
