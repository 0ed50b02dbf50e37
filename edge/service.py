"""The daemon's main loop: camera -> classifier -> smoother -> publisher, with signals, reload, stats and sd_notify.

One thread runs this loop; the camera grabs on its own thread and paho runs its own network thread, so the
loop never waits on the network and every wait is bounded (it watches one stop event). SIGTERM/SIGINT stop it
after the current frame; SIGHUP, or a changed model file, reloads the model atomically: the new model is
loaded and test-run beside the old one and swapped in only when it works, otherwise the old one keeps running
and the failure is reported on MQTT (`.../event`) and in the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from edge.camera import Camera
from edge.config import Config
from edge.errors import EdgeError
from edge.model import Classifier, load_model
from edge.preprocess import preprocess
from edge.sdnotify import Notifier
from edge.smoothing import Smoother

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.25  # the longest the loop waits for a frame before looking at signals, timers, heartbeats


def open_model(cfg: Config) -> Classifier:
    """Load the configured model and run it once on a blank frame, so a model that cannot run is refused here."""
    m = cfg.model
    clf = load_model(m.path, labels=m.labels, device=m.device, threads=m.threads)
    try:
        clf.run(preprocess(np.zeros((clf.spec.input.height, clf.spec.input.width, 3), np.uint8), clf.spec.input))
    except EdgeError:
        clf.close()
        raise
    return clf


def _file_signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Service:
    """The running daemon for one validated `Config`. `run()` blocks until stopped and returns the exit code.

    Args:
        config: the validated configuration.
        notifier: systemd notification (default: from $NOTIFY_SOCKET / $WATCHDOG_USEC).
    """

    def __init__(self, config: Config, *, notifier: Notifier | None = None) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        self._stop = threading.Event()  # set by stop() from any thread; the loop's waits watch it
        # Set by signal handlers, which must take no lock (Event.set() could deadlock on the lock the
        # interrupted main thread holds); the loop polls them at least every READ_TIMEOUT_S.
        self._signalled_stop = False
        self._reload = False
        self.clf: Classifier | None = None
        self.publisher: Any = None
        self.camera: Camera | None = None
        self.smoother: Smoother | None = None
        self.classified = 0
        self.errors = 0  # frames whose inference failed
        self._failing = 0  # consecutive failed frames
        self._watch: tuple[float, Any, Any] = (0.0, None, None)  # model file: next check, signature, pending one
        self._times: deque[float] = deque(maxlen=10_000)  # inference ms since the last stats
        self._started = time.monotonic()
        self._last_ms = 0.0  # the last frame's inference time, repeated by heartbeats
        self._camera_up: bool | None = None  # last camera state reported on .../event

    # -- control (thread-safe) -------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the current frame and shut down."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the loop to reload the model (what SIGHUP does); safe from a signal handler."""
        self._reload = True

    def _signal_stop(self, *_: object) -> None:
        self._signalled_stop = True

    @property
    def stopping(self) -> bool:
        """True once stop() was called or SIGTERM/SIGINT arrived."""
        return self._signalled_stop or self._stop.is_set()

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, loop until stopped, shut down cleanly; 0 on a normal stop.

        Raises:
            EdgeError: the model cannot be loaded or run (nothing else is started then).
        """
        from edge.publisher import Publisher

        cfg = self.config
        restore = self._install_signals()
        try:
            self.clf = open_model(cfg)
            spec = self.clf.spec
            self.smoother = self._new_smoother()
            self.publisher = Publisher(cfg.mqtt_options(), model=spec.name, labels=spec.labels, device=spec.device)
            self.publisher.start()
            c = cfg.camera
            self.camera = Camera(
                c.source,
                width=c.width,
                height=c.height,
                loop=c.loop,
                realtime=c.realtime,
                reconnect_min_s=c.reconnect_min_s,
                reconnect_max_s=c.reconnect_max_s,
                timeout_s=c.timeout_s,
            ).start()
            log.info(
                "running: model %s (%d classes) on %s, camera %s, MQTT %s:%d as %s/%s",
                spec.name, spec.num_classes, spec.device, self.camera.name, cfg.mqtt.host, cfg.mqtt.port,
                cfg.mqtt.topic_prefix, cfg.mqtt.device_id,
            )  # fmt: skip
            self.notifier.ready(f"running; model {spec.name} on {spec.device}; waiting for camera")
            self._loop()
            return 0
        finally:
            self._shutdown()
            restore()

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        handlers = {
            signal.SIGTERM: self._signal_stop,
            signal.SIGINT: self._signal_stop,
            signal.SIGHUP: lambda *_: self.request_reload(),
        }
        previous = {sig: signal.signal(sig, h) for sig, h in handlers.items()}

        def restore() -> None:
            for sig, h in previous.items():
                signal.signal(sig, h)

        return restore

    def _shutdown(self) -> None:
        if self.publisher is None:  # failed before anything ran: the caller reports the error
            if self.clf is not None:
                self.clf.close()
            return
        self.notifier.stopping()
        t0 = time.monotonic()
        if self.camera is not None:
            self.camera.close(timeout=1.0)
        self.publisher.stop(timeout=2.0)
        if self.clf is not None:
            self.clf.close()
        self.notifier.close()
        log.info("stopped (shutdown took %.1f s)", time.monotonic() - t0)

    def _new_smoother(self) -> Smoother:
        s, m = self.config.smoothing, self.config.model
        assert self.clf is not None
        return Smoother(
            self.clf.spec.labels,
            mode=s.mode,
            frames=s.frames,
            top_k=m.top_k,
            threshold=m.threshold,
            heartbeat_s=s.heartbeat_s,
        )

    # -- the loop --------------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        """Until stopped: take the newest frame when due, classify, publish; heartbeats, reloads, watchdog, stats."""
        cfg, camera = self.config, self.camera
        assert camera is not None
        period = 1.0 / cfg.camera.max_rate if cfg.camera.max_rate > 0 else 0.0
        now = time.monotonic()
        next_slot, next_stats, stats_base = now, now + cfg.stats.interval_s, (now, camera.stats, 0)
        self._watch = (now + cfg.model.watch_interval_s, _file_signature(cfg.model.path), None)
        ping_every = self.notifier.watchdog_interval
        next_ping, pinged_at = now, -1
        while not self.stopping:
            resting = bool(period) and next_slot > now  # classified recently; the next frame is not due yet
            if resting:
                self._stop.wait(min(next_slot - now, READ_TIMEOUT_S))
                frame = None
            else:
                frame = camera.read(READ_TIMEOUT_S)
            now = time.monotonic()
            if frame is not None:
                self._classify(frame.image, frame.captured_at)
                next_slot = max(next_slot + period, now) if period else now
            elif not resting and camera.stats.ended:
                log.info("video file ended and camera.loop is false: stopping")
                break
            elif (decision := self.smoother.heartbeat(now)) is not None:
                self._publish(decision, self._last_ms, time.time())
            self._check_camera()
            self._check_reload(now)
            if ping_every and now >= next_ping and (resting or self._progressing(pinged_at, now)):
                self.notifier.watchdog()
                next_ping, pinged_at = now + ping_every, self.classified
            if now >= next_stats:
                stats_base = self._publish_stats(stats_base, now)
                next_stats = now + cfg.stats.interval_s

    def _check_camera(self) -> None:
        """Report the camera coming and going on `.../event` (its thread logs it)."""
        from edge.mqtt_contract import iso_utc

        cam = self.camera.stats
        if cam.connected == self._camera_up or (self._camera_up is None and not cam.connected):
            return
        self._camera_up = cam.connected
        self.publisher.publish_event(
            {"event": "camera_connected" if cam.connected else "camera_lost", "source": self.camera.name,
             "reconnects": cam.reconnects, "timestamp": iso_utc(time.time())}
        )  # fmt: skip

    def _check_reload(self, now: float) -> None:
        """Reload on SIGHUP, or when the model file changed and then stayed the same for one more poll."""
        m = self.config.model
        next_watch, watched, pending = self._watch
        if self._reload:
            self._reload = False
            self._reload_model("SIGHUP")
            watched = _file_signature(m.path)
        elif m.watch and now >= next_watch:
            next_watch = now + m.watch_interval_s
            sig = _file_signature(m.path)
            if sig is not None and sig != watched:
                if sig == pending:  # settled: a copy in progress would still be changing
                    watched, pending = sig, None
                    self._reload_model("model file changed")
                else:
                    pending = sig
        self._watch = (next_watch, watched, pending)

    def _progressing(self, classified_at_last_ping: int, now: float) -> bool:
        """Frames were classified since the last ping, or the camera is away and being retried on schedule."""
        if self.classified != classified_at_last_ping:
            return True
        cam, c = self.camera.stats, self.config.camera
        return not cam.connected and now - cam.last_activity <= c.reconnect_max_s + c.timeout_s + 5.0

    def _classify(self, image: np.ndarray, captured_at: float) -> None:
        clf = self.clf
        try:
            class_scores, ms = clf.timed_scores(image)
            if not np.all(np.isfinite(class_scores)):
                raise EdgeError(f"{clf.spec.path}: the model output NaN or infinite scores")
        except EdgeError as e:
            self.errors += 1
            self._failing += 1
            if self._failing == 1:  # once per run of failures, not once per frame
                log.error("classification failed (trying the next frames): %s", e)
            return
        if self._failing:
            log.info("classification works again after %d failed frame(s)", self._failing)
            self._failing = 0
        self.classified += 1
        self._times.append(ms)
        self._last_ms = ms
        decision = self.smoother.update(class_scores, time.monotonic())
        if decision is not None:
            self._publish(decision, ms, time.time() - (time.monotonic() - captured_at))

    def _publish(self, decision, inference_ms: float, timestamp: float) -> None:
        from edge.mqtt_contract import classification_payload

        payload = classification_payload(
            decision.predictions,
            frame=self.classified,
            inference_ms=inference_ms,
            model=self.clf.spec.name,
            timestamp=timestamp,
        )
        self.publisher.publish_classification(payload)
        if decision.reason == "change":
            log.info("label: %s (%.2f)", payload["label"], payload["score"])

    # -- model reload --------------------------------------------------------------------------------------------

    def _reload_model(self, why: str) -> None:
        from edge.mqtt_contract import iso_utc

        old = self.clf
        path = self.config.model.path
        try:
            new = open_model(self.config)
        except EdgeError as e:
            log.error("model reload (%s) rejected, keeping %s: %s", why, old.spec.name, e)
            self.publisher.publish_event(
                {"event": "model_reload_failed", "reason": why, "path": path, "error": str(e),
                 "model": old.spec.name, "timestamp": iso_utc(time.time())}
            )  # fmt: skip
            return
        self.clf = new
        old.close()
        self.smoother = self._new_smoother()
        spec = new.spec
        self.publisher.set_model(spec.name, spec.labels, spec.device)
        self.publisher.publish_event(
            {"event": "model_reloaded", "reason": why, "path": path, "model": spec.name,
             "classes": spec.num_classes, "device": spec.device, "timestamp": iso_utc(time.time())}
        )  # fmt: skip
        log.info("model reloaded (%s): %s, %d classes on %s", why, spec.name, spec.num_classes, spec.device)

    # -- stats ---------------------------------------------------------------------------------------------------

    def stats(self, base: tuple[float, Any, int], now: float) -> dict[str, Any]:
        """The stats payload for the interval since `base` (time, camera stats, classified count)."""
        t0, cam0, classified0 = base
        cam = self.camera.stats
        dt = max(now - t0, 1e-6)
        times = np.array(self._times) if self._times else np.zeros(1)
        payload = {
            "fps_captured": round((cam.captured - cam0.captured) / dt, 2),
            "fps_classified": round((self.classified - classified0) / dt, 2),
            "fps_dropped": round((cam.dropped - cam0.dropped) / dt, 2),
            "inference_ms_p50": round(float(np.percentile(times, 50)), 2),
            "inference_ms_p95": round(float(np.percentile(times, 95)), 2),
            "frames_classified": self.classified,
            "inference_errors": self.errors,
            "frames_dropped": cam.dropped,
            "camera_connected": cam.connected,
            "camera_reconnects": cam.reconnects,
            "uptime_s": round(now - self._started, 1),
            "model": self.clf.spec.name,
            "device": self.clf.spec.device,
        }
        with contextlib.suppress(Exception):  # counters are best effort; stats must still go out
            payload.update(self.publisher.counters())
        return payload

    def _publish_stats(self, base: tuple[float, Any, int], now: float) -> tuple[float, Any, int]:
        payload = self.stats(base, now)
        self._times.clear()
        self.publisher.publish_stats(payload)
        mqtt = "connected" if self.publisher.connected else "disconnected"
        self.notifier.status(
            f"{payload['fps_classified']} fps classified, p50 {payload['inference_ms_p50']} ms; "
            f"camera {'ok' if payload['camera_connected'] else 'away'} ({payload['camera_reconnects']} reconnects); "
            f"MQTT {mqtt}; model {payload['model']} on {payload['device']}"
        )
        log.debug("stats: %s", payload)
        return (now, self.camera.stats, self.classified)
