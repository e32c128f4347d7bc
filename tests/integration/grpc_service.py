"""A gRPC test service on python3-grpcio without generated code: methods take and return raw
bytes. Unary echoes (or fails as the request asks), server streaming sends N copies,
client streaming returns the total length, bidi echoes each message; cancellations are
recorded."""
from concurrent import futures
import threading
import time

import grpc

MAX_MSG = 32 << 20
OPTIONS = [("grpc.max_receive_message_length", MAX_MSG), ("grpc.max_send_message_length", MAX_MSG)]


class Service:
    def __init__(self, tls=None):
        """tls: (certificate chain PEM, key PEM) bytes to serve gRPC over TLS (ALPN h2)."""
        self.cancelled = threading.Event()
        self.calls = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=128), options=OPTIONS)
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
        if tls is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            creds = grpc.ssl_server_credentials([(tls[1], tls[0])])
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        self.server.start()

    def unary(self, request, context):
        self.calls += 1
        if request.startswith(b"fail:"):
            context.abort(grpc.StatusCode.NOT_FOUND, request[5:].decode())
        if request.startswith(b"sleep:"):
            time.sleep(float(request[6:]))
        context.set_trailing_metadata((("x-trailer", "kept"),))
        return request

    def server_stream(self, request, context):
        n = int(request or b"3")
        for i in range(n):
            yield b"msg-%d" % i
        context.set_trailing_metadata((("x-count", str(n)),))

    def client_stream(self, request_iterator, context):
        context.add_callback(self.cancelled.set)
        total = 0
        for m in request_iterator:
            total += len(m)
        return str(total).encode()

    def bidi(self, request_iterator, context):
        for m in request_iterator:
            yield m

    def stop(self):
        self.server.stop(0)


def channel(port):
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS)


def stubs(ch):
    return {
        "unary": ch.unary_unary("/test.Echo/Unary"),
        "server_stream": ch.unary_stream("/test.Echo/ServerStream"),
        "client_stream": ch.stream_unary("/test.Echo/ClientStream"),
        "bidi": ch.stream_stream("/test.Echo/Bidi"),
    }
