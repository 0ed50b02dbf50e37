"""Camera sources: the newest-frame grabber thread, OpenCV sources (V4L2, files, RTSP, HTTP) and child-process
sources (`csi:N` through rpicam-vid, `exec:`)."""
