"""Clinical-trial endpoints from MRD results and clinical tables (IMWG/PCL response, survival, PK, safety, frailty).

Entry points: :func:`run_study` (STUDY.yaml → output folder), :func:`analyse` (validated tables → results),
:func:`load_study` / :func:`load_tables` (validation). Engines: :mod:`.imwg` (+ :mod:`.pcl`), :mod:`.mrd_status`,
:mod:`.survival`, :mod:`.kinetics`, :mod:`.safety`, :mod:`.frailty`; every threshold lives in :mod:`.criteria`.
"""

from mrdflow.endpoints.study import Study, load_study
from mrdflow.endpoints.tables import Tables, load_tables
from mrdflow.endpoints.trial import TrialResults, analyse, run_study, write_outputs

__all__ = ["Study", "load_study", "Tables", "load_tables", "TrialResults", "analyse", "run_study", "write_outputs"]
