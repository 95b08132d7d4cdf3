"""Event sources: the synthetic city simulator (and later importers and replays)."""

from streams.sources.simulator import (
    Emitted,
    LiveCity,
    LiveStream,
    SimulatedHistory,
    SimulationConfig,
    iter_simulation,
    live_stream,
    produce,
    simulate,
)

__all__ = [
    "Emitted",
    "LiveCity",
    "LiveStream",
    "SimulatedHistory",
    "SimulationConfig",
    "iter_simulation",
    "live_stream",
    "produce",
    "simulate",
]
