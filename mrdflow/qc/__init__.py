"""Sample QC: time/flow-rate stability, acquisition adequacy, hemodilution."""
