"""Reading and writing FCS 2.0–3.2 list-mode files."""
