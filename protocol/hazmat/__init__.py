"""The small dangerous core (like pyca/cryptography's `hazmat`): raw ristretto255 group and scalar
operations and hash-to-group. Its functions trust their callers; only `protocol`'s own modules
import it. Use `protocol.oprf`, and `protocol.keyops` for what a key holder does (evaluate, wrap,
rotate); `tests/test_import_graph.py` fails when the server or the SDK imports this package."""
