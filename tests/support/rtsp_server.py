"""A real RTSP server on loopback for the tests: GStreamer's gst-rtsp-server serving an H.264 clip.

Run with the system Python, which has the GObject bindings (Debian: python3-gi gir1.2-gst-rtsp-server-1.0
gstreamer1.0-plugins-good gstreamer1.0-plugins-bad):

    /usr/bin/python3 tests/support/rtsp_server.py PORT CLIP.mkv

It serves rtsp://127.0.0.1:PORT/stream at the clip's own pace (each client from the start of the clip), prints
`ready` once listening and, for every SETUP request, `setup <Transport header>` (so a test can see which
transport the client asked for), flushed, on stdout. SIGTERM or SIGKILL ends it; clients see the stream end.
"""

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> int:
    port, clip = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{clip}" ! matroskademux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )'
    )
    server.get_mount_points().add_factory("/stream", factory)

    def on_client(server, client):
        def setup(client, ctx):
            _, value = ctx.request.get_header(GstRtsp.RTSPHeaderField.TRANSPORT, 0)
            print(f"setup {value}", flush=True)

        client.connect("setup-request", setup)

    server.connect("client-connected", on_client)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
