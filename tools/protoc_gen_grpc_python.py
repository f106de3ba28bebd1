"""A protoc plugin that buf runs to generate gRPC Python stubs offline.

buf refuses `protoc_builtin: grpc_python`, and grpcio-tools ships the gRPC
generator only inside its bundled protoc. This plugin takes buf's
CodeGeneratorRequest, hands its descriptors to that protoc through
`--descriptor_set_in`, and returns the generated files to buf.
"""

import os
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        descriptor_path = os.path.join(tmp, "descriptors.binpb")
        descriptors = descriptor_pb2.FileDescriptorSet(file=request.proto_file)
        with open(descriptor_path, "wb") as handle:
            handle.write(descriptors.SerializeToString())
        out_dir = os.path.join(tmp, "out")
        os.mkdir(out_dir)
        args = [
            "grpc_tools.protoc",
            f"--descriptor_set_in={descriptor_path}",
            f"--grpc_python_out={out_dir}",
            *request.file_to_generate,
        ]
        if protoc.main(args) != 0:
            response.error = "grpc_tools.protoc failed for " + ", ".join(request.file_to_generate)
            return response
        for root, _dirs, files in os.walk(out_dir):
            for name in sorted(files):
                path = os.path.join(root, name)
                generated = response.file.add()
                generated.name = os.path.relpath(path, out_dir)
                with open(path, encoding="utf-8") as handle:
                    generated.content = handle.read()
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
