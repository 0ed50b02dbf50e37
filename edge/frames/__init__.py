"""Frames as bytes and pixels, pure: MJPEG splitting, one decode per frame, image files, region boxes and crops."""
