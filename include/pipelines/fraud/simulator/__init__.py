"""The card-fraud data simulator of shared/SIMULATOR.md."""

from include.pipelines.fraud.simulator.generator import DriftScenario, Simulation, SimulatorConfig, simulate

__all__ = ["DriftScenario", "Simulation", "SimulatorConfig", "simulate"]
