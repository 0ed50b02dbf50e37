"""The configuration: the schema, loading (TOML, environment, secrets), the checks, the generated docs, and the
small parsers of single settings (device, listen address, source commands, TLS context, URL redaction).

Imports no runtime part. The parts take their section as an argument; only the wiring loads a file.
"""
