"""Startup doctor: read a vLLM server log, say why the start failed, and which flags fix it.

Pure: `diagnose` takes lines and returns a Diagnosis; reading files and the calibration store
(rentstack.calibration) happen in `reader` and the `rentstack doctor` command.

Where things are: `parse` reads a log in one pass into facts (version, launch args, the figures
of each phase, every recognised failure line); `causes/` holds one module per failure cause — its
log patterns, the figures it reads, its explanation and its fixes — listed once in
`causes.REGISTRY` (its docstring says how to add one); `diagnose` picks the root cause and asks it
for words and fixes; `fixes` is what every cause builds its fixes with (the launch as logged,
the planner's prediction of the next start); `diagnosis` holds the result types.
"""

from rentstack.calibration import lookup_calibration, measured_figures, save_calibration
from rentstack.doctor.diagnose import diagnose, judge, read_facts
from rentstack.doctor.fixes import first_fix
from rentstack.doctor.causes import CAUSES
from rentstack.doctor.diagnosis import Diagnosis, Fix, PlannerInputs
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
