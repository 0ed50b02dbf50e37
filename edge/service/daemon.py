"""The running daemon: wires camera -> classifier -> smoother -> contract -> publisher, with signals and sd_notify.

One thread runs the loop; the camera and paho run their own threads, so the loop never waits on the network and
every wait is bounded (one stop event). SIGTERM/SIGINT stop it after the current frame; SIGHUP or a changed model
file (`edge.service.model_watch`) reloads the model atomically: loaded and test-run beside the old one, swapped in
only when it works. A thread that dies (the network's or the camera's) is logged and ends the run with exit 1,
so the service manager restarts it: never hidden behind watchdog pings.
"""

from __future__ import annotations

import logging
import threading
import time

from edge.collect.collector import Collector
from edge.config.load import Config
from edge.errors import EdgeError
from edge.http.server import HttpServer, Snapshot
from edge.inference.flow import FrameFlow
from edge.inference.model import Classifier, file_signature
from edge.inference.signature import UntrustedModel
from edge.inference.stats import StatsWindow, status_line
from edge.inference.workers import Result
from edge.mqtt import contract
from edge.mqtt.publisher import Publisher
from edge.service import process_hooks
from edge.service.deployment import DeploymentReport
from edge.service.model_watch import ModelFileWatcher
from edge.service.models import ModelKey, open_workers
from edge.service.reporter import wall_time
from edge.service.sdnotify import Notifier
from edge.service.streams import (
    Stream,
    build_streams,
    publish_result,
    region_labels,
    renew,
    report_drift,
    tasks_and_runners,
)
from edge.sources.camera import Camera

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.25  # the longest the loop waits for a frame before looking at signals, timers, heartbeats
QUICK_STATS_S = (1.0, 5.0)  # after a discovery send: stats at once, then after each (HA's new entities subscribe late)
EXIT_THREAD_DIED = 1


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
        self._signalled_stop = self._reload = False
        self._dead_thread: str | None = None
        self.clf: Classifier | None = None  # the first stream's model: what stats and discovery name
        self.models: list[dict[ModelKey, Classifier]] = []  # per worker: one interpreter per distinct model
        self.streams: list[Stream] = []  # the whole frame, or one per region of interest
        self.frames: FrameFlow | None = None
        self.publisher: Publisher | None = None
        self.camera: Camera | None = None
        self.classified, self.errors, self._failing = 0, 0, 0  # frames: classified, failed, failed in a row
        self._started, self._started_wall = time.monotonic(), time.time()
        self.http = HttpServer(config.http, token=config.http_token, snapshot=self._snapshot,
                               max_rate=config.camera.max_rate)  # the live page and /metrics: `[http]`
        self._window = StatsWindow(self._started)  # the current stats interval (replaced by the loop)
        self.collector: Collector | None = None  # `[collect]`: the frames kept for retraining

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
            self.models = open_workers(cfg)
            self.clf = next(iter(self.models[0].values()))
            spec = self.clf.spec
            self.publisher = Publisher(cfg.mqtt, cfg.homeassistant, password=cfg.password, model=spec.name,
                                       device=spec.device, labels=spec.labels,
                                       regions=region_labels(cfg, self.models[0]))  # fmt: skip
            self.streams = build_streams(cfg, self.models[0], self.publisher, time.monotonic())
            if cfg.collect.enabled:
                streams = [(st.name, st.box) for st in self.streams]
                self.collector = Collector(cfg.collect, str(cfg.mqtt.device_id), streams).start()
            self.deployment = DeploymentReport(cfg.deployment.state_file, self.publisher)
            self.deployment.start()
            self.publisher.start([m for st in self.streams for m in st.reporter.start_messages(
                contract.stream_topics(cfg.mqtt.topic_prefix, str(cfg.mqtt.device_id), st.name))])
            self.camera = Camera(cfg.camera, size_hint=(spec.input.width, spec.input.height))
            self.frames = FrameFlow(self.camera, *tasks_and_runners(self.streams, self.models),
                                    max_rate=cfg.camera.max_rate)  # fmt: skip
            self.frames.on_take = self._taken  # the frames classified: the live page and the collector see them
            self.camera.start()
            self.http.start()
            log.info("running: model %s (%d classes) on %s, %d workers x %d thread(s), camera %s, MQTT %s:%d as %s/%s",
                     spec.name, spec.num_classes, spec.device, len(self.models), spec.threads, self.camera.name,
                     cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.topic_prefix, cfg.mqtt.device_id)  # fmt: skip
            self.notifier.ready(f"running; model {spec.name} on {spec.device}; waiting for camera")
            self._loop()
            return EXIT_THREAD_DIED if self._dead_thread else 0
        finally:
            self._shutdown()
            restore()

    def _taken(self, frame: object) -> None:
        self.http.tap.taken(frame)
        if self.collector is not None:
            self.collector.taken(frame)

    def _on_stop_signal(self) -> None:
        self._signalled_stop = True

    def _on_thread_death(self, name: str) -> None:
        self._dead_thread = name

    def _close_models(self) -> None:
        for worker in self.models:
            for clf in worker.values():
                clf.close()

    def _shutdown(self) -> None:
        if self.publisher is None:  # failed before anything ran: the caller reports the error
            self._close_models()
            return
        self.notifier.stopping()
        t0 = time.monotonic()
        self.http.stop()
        if self.camera is not None:
            self.camera.close(timeout=1.0)
        if self.frames is not None:
            self.frames.close(timeout=1.0)  # results not published: the daemon is stopping
        if self.collector is not None:
            self.collector.close(timeout=2.0)  # what it already took is written
        self.publisher.stop(timeout=2.0)
        self._close_models()
        self.notifier.close()
        log.info("stopped (shutdown took %.1f s)", time.monotonic() - t0)

    # -- the loop --------------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        """Until stopped: take the newest frame when due, classify, publish; heartbeats, reloads, watchdog, stats."""
        cfg, camera, publisher, frames = self.config, self.camera, self.publisher, self.frames
        assert camera is not None and publisher is not None and frames is not None
        now = time.monotonic()
        next_stats, quick, forced = now + cfg.stats.interval_s, [], now - 1.0
        window = self._window = StatsWindow(now)
        watcher = ModelFileWatcher(cfg.model.watch_interval_s, file_signature(cfg.model.path), now)
        ping_every = self.notifier.watchdog_interval
        next_ping, pinged_at = now, -1
        while not self.stopping:
            results = frames.poll(READ_TIMEOUT_S)
            resting = frames.resting  # classified recently; the next frame is not due yet
            now = time.monotonic()
            for result in results:
                self._on_result(result, window)
            if results:
                pass
            elif camera.stats.ended and frames.idle:
                log.info("video file ended and camera.loop is false: stopping")
                break
            else:
                for st in self.streams:
                    if (decision := st.smoother.heartbeat(now)) is not None:
                        st.reporter.publish(decision, wall_time(st.smoother.changed_at))
            if self._dead_thread or not publisher.network_alive:
                self._dead_thread = self._dead_thread or "MQTT network"
                log.error("the %s thread is dead: exiting with status %d", self._dead_thread, EXIT_THREAD_DIED)
                break
            publisher.tick(now)
            self._check_camera()
            if publisher.take_reconnected():  # the broker may have lost every retained message: all again
                for st in self.streams:
                    st.reporter.resend()
                self.deployment.resend()
            if publisher.take_stats_due() and now >= forced + 1.0:  # no Home Assistant sensor left unknown
                next_stats, quick, forced = now, list(QUICK_STATS_S), now  # (at most once a second: a flood)
            self._check_reload(watcher, now)
            self.deployment.poll(now)
            if ping_every and now >= next_ping and (resting or self._progressing(pinged_at, now)):
                self.notifier.watchdog()
                next_ping, pinged_at = now + ping_every, self.classified
            if now >= next_stats:
                self._publish_stats(window, now)
                interval = min(quick.pop(0), cfg.stats.interval_s) if quick else cfg.stats.interval_s
                next_stats = now + interval

    def _check_camera(self) -> None:
        """Report the camera's state (retained) and its coming and going (events); its thread logs them."""
        cam = self.camera.stats
        if not (cam.connected or cam.open_failures):  # unknown until the first open attempt ends
            return
        changed = self.streams[0].reporter.camera(cam.connected, source=self.camera.name, reconnects=cam.reconnects)
        if changed and not cam.connected:  # the last state is no longer seen: stale until fresh frames confirm one
            for st in self.streams:
                if (decision := st.smoother.stale(time.monotonic())) is not None:
                    st.reporter.publish(decision, wall_time(st.smoother.changed_at))

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

    def _on_result(self, result: Result, window: StatsWindow) -> None:
        """One frame's result, in frame order: count it, smooth it, publish what the smoother decides."""
        if result.error is not None:
            self.errors += 1
            self._failing += 1
            if self._failing == 1:  # once per run of failures, not once per frame
                log.error("classification failed (trying the next frames): %s", result.error)
            return
        if self._failing:
            log.info("classification works again after %d failed frame(s)", self._failing)
            self._failing = 0
        self.classified += 1
        window.add_inference(sum(result.inference_ms), time.monotonic())
        self.http.tap.offer(result.frame, sum(result.inference_ms), [(st.name, st.box, sc, st.smoother.labels)
                            for st, sc in zip(self.streams, result.scores, strict=True)])  # fmt: skip
        publish_result(self.streams, result.scores, result.inference_ms, seq=result.frame, frame_no=self.classified,
                       captured_at=wall_time(result.captured_at), now=time.monotonic(), collector=self.collector)

    def _reload_model(self, why: str) -> None:
        old, path, cfg = self.clf, self.config.model.path, self.config
        try:
            models = open_workers(cfg)
        except EdgeError as e:  # the old model classifies on; UntrustedModel: its signature does not verify
            refused = isinstance(e, UntrustedModel)
            log.error("model reload (%s) %s, keeping %s: %s", why, "refused" if refused else "rejected",
                      old.spec.name, e)  # fmt: skip
            event = contract.model_rejected if refused else contract.model_reload_failed
            self.publisher.publish_event(event(reason=why, path=path, error=str(e), model=old.spec.name,
                                               timestamp=time.time()))  # fmt: skip
            return
        for result in self.frames.swap(*tasks_and_runners(self.streams, models)):  # the old model's last frames
            self._on_result(result, self._window)
        self._close_models()
        self.models, self.clf = models, next(iter(models[0].values()))
        spec = self.clf.spec
        renew(cfg, self.streams, models[0], time.monotonic())
        self.publisher.set_model(spec.name, spec.device, spec.labels, region_labels(cfg, models[0]))
        self.publisher.publish_event(contract.model_reloaded(reason=why, path=path, model=spec.name, device=spec.device,
                                                             classes=spec.num_classes, timestamp=time.time()))
        log.info("model reloaded (%s): %s, %d classes on %s", why, spec.name, spec.num_classes, spec.device)

    def _snapshot(self) -> Snapshot:
        """The state the HTTP server shows, read from its threads (`edge.http.state.Snapshot`)."""
        spec, pub, uptime = self.clf.spec, self.publisher, time.monotonic() - self._started
        states = {st.name: st.reporter.state() for st in self.streams}
        return Snapshot(self.camera.stats, self.camera.name, pub.counters(), pub.connected, self.classified,
                        self.errors, uptime, self._started_wall, spec.name, spec.device, states,
                        {st.name: st.reporter.drift_state() for st in self.streams})

    def _publish_stats(self, window: StatsWindow, now: float) -> None:
        cam = self.camera.stats
        summary = window.summary(now, cam.captured, cam.dropped, self.classified)
        spec = self.clf.spec
        payload = contract.stats_payload(
            summary, cam, self.publisher.counters(), classified=self.classified, errors=self.errors,
            uptime_s=now - self._started, started_at=self._started_wall, model=spec.name, device=spec.device,
            collect=self.collector.counters() if self.collector else None,
        )  # fmt: skip
        self.publisher.publish_stats(payload)
        for st in self.streams:  # the window's figures move between changes: the retained drift state too
            report_drift(st, changed=False)
        self.notifier.status(status_line(payload, self.publisher.connected))
        log.debug("stats: %s", payload)
