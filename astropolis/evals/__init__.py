"""Offline evaluation: benchmarks that print figures (`python -m astropolis.evals.<name>`), replayable
nights, classifier and agent scenarios. May import everything."""
