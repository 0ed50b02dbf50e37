"""The running daemon: wires camera -> classifier -> smoother -> contract -> publisher, with signals and sd_notify.

One thread runs the loop; the camera grabs on its own thread and paho runs its own network thread, so the loop
never waits on the network and every wait is bounded (it watches one stop event). SIGTERM/SIGINT stop it after
the current frame; SIGHUP, or a changed model file (`edge.model_watch`), reloads the model atomically: the new
model is loaded and test-run beside the old one and swapped in only when it works. A thread that dies (the
network's or the camera's) is logged and ends the run with exit 1, so the service manager restarts it: it is
never hidden behind watchdog pings.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

from edge import mqtt_contract as contract
from edge import process_hooks
from edge.camera import Camera
from edge.config import Config
from edge.errors import EdgeError
from edge.model import Classifier, load_model
from edge.model_watch import ModelFileWatcher, Signature
from edge.publisher import Publisher
from edge.reporter import Reporter
from edge.sdnotify import Notifier
from edge.smoothing import Smoother
from edge.stats import StatsWindow

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.25  # the longest the loop waits for a frame before looking at signals, timers, heartbeats
QUICK_STATS_S = 5.0  # after a (re)connect: stats at once, then after this long (a real frame rate for dashboards)
EXIT_THREAD_DIED = 1


def file_signature(path: str) -> Signature:
    """What identifies a version of the model file (mtime, size, inode), or None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def open_model(cfg: Config) -> Classifier:
    """Load the configured model and run it once on a blank frame, so a model that cannot run is refused here.

    Raises:
        EdgeError: `<config file>: model: <the model's problem>`, one line.
    """
    m = cfg.model
    try:
        clf = load_model(m.path, labels=m.labels, device=m.device, threads=m.threads)
    except EdgeError as e:
        raise EdgeError(f"{cfg.source}: model: {e}") from None
    try:
        clf.warm_up()
    except EdgeError as e:
        clf.close()
        raise EdgeError(f"{cfg.source}: model: {e}") from None
    return clf


def new_smoother(cfg: Config, labels: tuple[str, ...]) -> Smoother:
    """The smoother for the configured `[smoothing]` and the model's `top_k`/`threshold`."""
    s, m = cfg.smoothing, cfg.model
    return Smoother(labels, mode=s.mode, frames=s.frames, top_k=m.top_k, threshold=m.threshold,
                    hysteresis=s.hysteresis, min_dwell_s=s.min_dwell_s, heartbeat_s=s.heartbeat_s)  # fmt: skip


def wall_time(monotonic: float | None) -> float | None:
    """A `time.monotonic()` reading as Unix time (None stays None)."""
    return None if monotonic is None else time.time() - (time.monotonic() - monotonic)


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
        self._dead_thread: str | None = None
        self.clf: Classifier | None = None
        self.publisher: Publisher | None = None
        self.camera: Camera | None = None
        self.smoother: Smoother | None = None
        self.classified = 0
        self.errors = 0  # frames whose inference failed
        self._failing = 0  # consecutive failed frames
        self.reporter: Reporter | None = None
        self._started, self._started_wall = time.monotonic(), time.time()

    # -- control (thread-safe) -------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the current frame and shut down."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the loop to reload the model (what SIGHUP does); safe from a signal handler."""
        self._reload = True

    @property
    def stopping(self) -> bool:
        """True once stop() was called or SIGTERM/SIGINT arrived."""
        return self._signalled_stop or self._stop.is_set()

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, loop until stopped, shut down cleanly; 0 on a normal stop, 1 when a thread died.

        Raises:
            EdgeError: the model cannot be loaded or run (nothing else is started then).
        """
        cfg = self.config
        restore = process_hooks.install(self._on_stop_signal, self.request_reload, self._on_thread_death)
        try:
            self.clf = open_model(cfg)
            spec = self.clf.spec
            self.smoother = new_smoother(cfg, spec.labels)
            self.publisher = Publisher(cfg.mqtt, cfg.homeassistant, password=cfg.password, model=spec.name,
                                       device=spec.device, labels=spec.labels)  # fmt: skip
            self.reporter = Reporter(self.publisher, model=spec.name, label_topic=cfg.mqtt.label_topic)
            self.publisher.start()
            self.camera = Camera(cfg.camera).start()
            log.info("running: model %s (%d classes) on %s, camera %s, MQTT %s:%d as %s/%s",
                     spec.name, spec.num_classes, spec.device, self.camera.name, cfg.mqtt.host, cfg.mqtt.port,
                     cfg.mqtt.topic_prefix, cfg.mqtt.device_id)  # fmt: skip
            self.notifier.ready(f"running; model {spec.name} on {spec.device}; waiting for camera")
            self._loop()
            return EXIT_THREAD_DIED if self._dead_thread else 0
        finally:
            self._shutdown()
            restore()

    def _on_stop_signal(self) -> None:
        self._signalled_stop = True

    def _on_thread_death(self, name: str) -> None:
        self._dead_thread = name

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

    # -- the loop --------------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        """Until stopped: take the newest frame when due, classify, publish; heartbeats, reloads, watchdog, stats."""
        cfg, camera, publisher = self.config, self.camera, self.publisher
        assert camera is not None and publisher is not None and self.smoother is not None
        period = 1.0 / cfg.camera.max_rate if cfg.camera.max_rate > 0 else 0.0
        now = time.monotonic()
        next_slot, next_stats, quick = now, now + cfg.stats.interval_s, False
        window = StatsWindow(now)
        watcher = ModelFileWatcher(cfg.model.watch_interval_s, file_signature(cfg.model.path), now)
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
                self._classify(frame.image, frame.captured_at, window)
                next_slot = max(next_slot + period, now) if period else now
            elif not resting and camera.stats.ended:
                log.info("video file ended and camera.loop is false: stopping")
                break
            elif (decision := self.smoother.heartbeat(now)) is not None:
                self.reporter.publish(decision, wall_time(self.smoother.changed_at))
            if self._dead_thread or not publisher.network_alive:
                self._dead_thread = self._dead_thread or "MQTT network"
                log.error("the %s thread is dead: exiting with status %d", self._dead_thread, EXIT_THREAD_DIED)
                break
            publisher.tick(now)
            self._check_camera()
            if publisher.take_reconnected():  # the broker may have lost every retained message: all again
                self.reporter.resend()
                next_stats, quick = now, True  # stats at once, and again soon with a real frame rate
            self._check_reload(watcher, now)
            if ping_every and now >= next_ping and (resting or self._progressing(pinged_at, now)):
                self.notifier.watchdog()
                next_ping, pinged_at = now + ping_every, self.classified
            if now >= next_stats:
                self._publish_stats(window, now)
                interval = min(QUICK_STATS_S, cfg.stats.interval_s) if quick else cfg.stats.interval_s
                next_stats, quick = now + interval, False

    def _check_camera(self) -> None:
        """Report the camera's state (retained) and its coming and going (events); its thread logs them."""
        cam = self.camera.stats
        if cam.connected or cam.open_failures:  # unknown until the first open attempt ends
            self.reporter.camera(cam.connected, source=self.camera.name, reconnects=cam.reconnects)

    def _check_reload(self, watcher: ModelFileWatcher, now: float) -> None:
        """Reload on SIGHUP, or when the model file changed and then stayed the same for one more poll."""
        m = self.config.model
        if self._reload:
            self._reload = False
            self._reload_model("SIGHUP")
            watcher.reloaded(file_signature(m.path))
        elif m.watch and watcher.due(now) and watcher.changed(file_signature(m.path), now):
            self._reload_model("model file changed")

    def _progressing(self, classified_at_last_ping: int, now: float) -> bool:
        """Frames were classified since the last ping, or the camera is away and being retried on schedule."""
        if self.classified != classified_at_last_ping:
            return True
        cam, c = self.camera.stats, self.config.camera
        return not cam.connected and now - cam.last_activity <= c.reconnect_max_s + c.timeout_s + 5.0

    def _classify(self, image: np.ndarray, captured_at: float, window: StatsWindow) -> None:
        try:
            class_scores, ms = self.clf.timed_scores(image)
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
        window.add_inference(ms)
        self.reporter.frame(self.classified, ms, wall_time(captured_at))
        decision = self.smoother.update(class_scores, time.monotonic())
        if decision is not None:
            payload = self.reporter.publish(decision, wall_time(self.smoother.changed_at))
            if decision.reason == "change":
                log.info("label: %s (%.2f)", payload["label"], payload["score"])

    def _reload_model(self, why: str) -> None:
        old, path = self.clf, self.config.model.path
        try:
            new = open_model(self.config)
        except EdgeError as e:
            log.error("model reload (%s) rejected, keeping %s: %s", why, old.spec.name, e)
            event = contract.model_reload_failed(reason=why, path=path, error=str(e), model=old.spec.name,
                                                 timestamp=time.time())  # fmt: skip
            self.publisher.publish_event(event)
            return
        self.clf = new
        old.close()
        spec = new.spec
        self.smoother = new_smoother(self.config, spec.labels)
        self.reporter.model = spec.name
        self.publisher.set_model(spec.name, spec.device, spec.labels)
        event = contract.model_reloaded(reason=why, path=path, model=spec.name, classes=spec.num_classes,
                                        device=spec.device, timestamp=time.time())  # fmt: skip
        self.publisher.publish_event(event)
        log.info("model reloaded (%s): %s, %d classes on %s", why, spec.name, spec.num_classes, spec.device)

    def _publish_stats(self, window: StatsWindow, now: float) -> None:
        cam = self.camera.stats
        summary = window.summary(now, cam.captured, cam.dropped, self.classified)
        spec = self.clf.spec
        payload = contract.stats_payload(
            summary, cam, self.publisher.counters(), classified=self.classified, errors=self.errors,
            uptime_s=now - self._started, started_at=self._started_wall, model=spec.name, device=spec.device,
        )  # fmt: skip
        self.publisher.publish_stats(payload)
        mqtt = "connected" if self.publisher.connected else "disconnected"
        self.notifier.status(
            f"{payload['fps_classified']} fps classified, p50 {payload['inference_ms_p50']} ms; "
            f"camera {'ok' if payload['camera_connected'] else 'away'} ({payload['camera_reconnects']} reconnects); "
            f"MQTT {mqtt}; model {payload['model']} on {payload['device']}"
        )
        log.debug("stats: %s", payload)
