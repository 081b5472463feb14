"""Traffic simulator: SIP callers and answering employee devices on loopback.

It fills the journal for demos and drives benchmarks (``zvonar simulate``). See run.py.
"""

from zvonar.sim.config import OFFICE_DAY, Dist, SimConfig, SimReport, percentile
from zvonar.sim.devices import Device, Devices, SimError
from zvonar.sim.numbers import CallerPool, caller_numbers
from zvonar.sim.run import SimTarget, run_simulation, simulate

__all__ = [
    "OFFICE_DAY",
    "CallerPool",
    "Device",
    "Devices",
    "Dist",
    "SimConfig",
    "SimError",
    "SimReport",
    "SimTarget",
    "caller_numbers",
    "percentile",
    "run_simulation",
    "simulate",
]
