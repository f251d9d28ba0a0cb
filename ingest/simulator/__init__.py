"""A charger fleet that talks OCPP 1.6 and 2.0.1 to the listener, with ground truth.

Python API::

    from ingest.simulator import SimulationOptions, run_simulation
    result = await run_simulation(SimulationOptions(url="ws://127.0.0.1:9000/ocpp", chargers=10, days=2))

`plan_fleet(options)` gives the same plan without connecting anywhere; see docs/simulator.md.
"""

from ingest.simulator.fleet import FleetPlan, plan_fleet
from ingest.simulator.options import SimulationError, SimulationOptions
from ingest.simulator.runner import SimulationResult, prepare, run_blocking, run_simulation

__all__ = [
    "FleetPlan",
    "SimulationError",
    "SimulationOptions",
    "SimulationResult",
    "plan_fleet",
    "prepare",
    "run_blocking",
    "run_simulation",
]
