# ruff: noqa
"""Names vulture cannot see being used, for `make lint`'s unused-code check: each is called by name by a framework.

Not imported by anything; vulture reads it as code that uses these names.
"""

# grpc.aio calls a server interceptor's intercept_service.
_.intercept_service
# http.server calls a request handler's do_GET, do_POST and log_message, and reads
# the server class's daemon_threads and address_family.
_.do_GET
_.do_POST
_.log_message
_.daemon_threads
_.address_family
# OpenTelemetry calls a span processor's on_start and on_end.
_.on_start
_.on_end
# SQLAlchemy calls the listeners registered with event.listens_for; the DB-API
# connection reads isolation_level.
_on_connect
_on_begin
_.isolation_level
# A module's __getattr__ resolves its names lazily (PEP 562).
__getattr__
# __exit__ and excepthooks take the exception triple whether they use it or not.
exc_type
exc_info
# A task is kept referenced so the event loop does not collect it while it runs.
_._resuming
# MeshPki's fields are read and written by name, from _PKI_FILES.
_.bus_key
# torch_geometric reads a HeteroData node store's num_nodes.
_.num_nodes
# The fork server's children run a job named by its "module:function" string.
compile_request
toolchain_request
probe_in_child
# tempfile reads tempdir, reset in a forked child whose TMPDIR may differ.
_.tempdir
