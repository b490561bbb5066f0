"""Startup doctor: read a vLLM server log, say why the start failed, and which flags fix it.

Pure: `diagnose` takes lines and returns a Diagnosis; reading files and the calibration store
happen in `reader` / `calibration` and the `rentstack doctor` command.
"""

from rentstack.doctor.calibration import lookup_calibration, measured_figures, save_calibration
from rentstack.doctor.diagnose import diagnose, judge, read_facts
from rentstack.doctor.fixes import first_fix
from rentstack.doctor.diagnosis import CAUSES, Diagnosis, Fix, PlannerInputs
from rentstack.doctor.reader import iter_lines

__all__ = [
    "CAUSES",
    "Diagnosis",
    "Fix",
    "PlannerInputs",
    "diagnose",
    "first_fix",
    "iter_lines",
    "judge",
    "lookup_calibration",
    "measured_figures",
    "read_facts",
    "save_calibration",
]
