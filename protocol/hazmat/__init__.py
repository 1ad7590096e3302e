"""The small dangerous core (like pyca/cryptography's `hazmat`): raw ristretto255 group and scalar
operations and hash-to-group. Its functions trust their callers; use `protocol.oprf` unless you
are writing a protocol step yourself (key rotation, for instance)."""
