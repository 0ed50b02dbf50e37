"""The running daemon: the wiring (`daemon`), the classification streams, the reporter, the model watch,
sd_notify and the process hooks."""
