"""The device's HTTP server: routes, the frame tap, `/api/state`, the overlay, `/metrics` and the live page."""
