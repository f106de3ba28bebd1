"""Tezzeret, the compilation forge: blueprint IRs -> kernel artifacts, with WAL recovery.

A `TezzeretWorker` claims compile jobs from Urza (through the `UrzaServiceApi` protocol),
runs the job's pipeline (`esper.tezzeret.pipelines`), and uploads the artifact;
its write-ahead log (`esper.tezzeret.wal`) lets a worker killed mid-compile
resume the job after a restart without a duplicate or half-written artifact.
`esper.tezzeret.artifacts.load_kernel_module` is the one place artifact bytes
become a runnable module. Importing this package does not import torch.
"""
