"""Nissa, observability: alerts, run summaries and stored traces.

Only the server exists so far: every rpc answers UNIMPLEMENTED until Nissa's own
issue builds the OTLP receiver, the alert store and the run summaries.
"""
