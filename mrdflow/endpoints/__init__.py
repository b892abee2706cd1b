"""Clinical-trial endpoints from MRD results and clinical tables (IMWG/PCL response, survival, PK, safety, frailty)."""
