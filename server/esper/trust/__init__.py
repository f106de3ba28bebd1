"""Trust boundaries that domain code shares: bounded inputs, kernel signatures, the mesh's PKI.

Nothing here imports grpc or nats; `esper.mesh.tls` turns these identities into
gRPC credentials.
"""
