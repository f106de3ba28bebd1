"""Nissa, observability: the OTLP trace receiver and span store, alert rules evaluated over every
server's metrics, the run board fed from Oona's telemetry, and the mission-control page.
"""
