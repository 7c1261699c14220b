"""`python -m serving.local [flags]`: ready the process for the runtime the flags ask for, then serve.

The process is readied here, before `server` is imported, because `--lean_process` decides how TensorFlow
itself is imported (without its public API and Keras), and the gRPC protos `server` imports already pull it in.
"""
import sys

from serving.local import runtime

if __name__ == "__main__":
    runtime.prepare_process(sys.argv[1:])
    from serving.local import server

    server.main()
