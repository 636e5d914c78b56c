"""Simulated sites: the demo sky catalogue, simulator processes (Alpaca, INDI) and their fault switches."""
