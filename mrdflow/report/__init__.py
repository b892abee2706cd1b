"""Per-sample QC reports and the batch summary (HTML, matplotlib plots)."""
