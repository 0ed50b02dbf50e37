"""`edge-daemon`'s command line: the command table (`main`), the CLI shape shared with `edge-train` and
`edge-deploy` (`shape`), the commands, `health`, `forget`, `demo` and its embedded broker. Nothing in `edge`
imports it."""
