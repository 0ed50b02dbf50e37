"""The configured models, opened: the main one and each region's own, one interpreter per model and worker.

A model is named by its key, (model file, label file); `main_key` and `region_key` are the only places that spell
one. `open_model` loads a model and runs it once on a blank frame, so a model that cannot run is refused before
anything uses it (`check-config` opens every model this way, as `run` does). With `[model] trusted_keys` every
model file (and label file) is read once, verified against its `.sig` (`edge.inference.signature`), and only
those bytes are loaded: an unsigned, changed or foreign-signed model raises `UntrustedModel`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import EdgeError
from edge.inference.model import Classifier, load_model
from edge.inference.signature import UntrustedModel, load_trusted_keys, read_verified

if TYPE_CHECKING:
    from edge.config.schema import Config, RegionConfig

ModelKey = tuple[str, str | None]  # (model file, label file): what identifies one loaded model


def main_key(cfg: Config) -> ModelKey:
    """The key of `[model]`'s own model."""
    return (cfg.model.path, cfg.model.labels)


def region_key(cfg: Config, region: RegionConfig) -> ModelKey:
    """The key of a region's model: its own, or the main one."""
    return (region.model, region.labels) if region.model else main_key(cfg)


def model_keys(cfg: Config) -> list[ModelKey]:
    """The distinct models the streams need, the main one first."""
    keys = [main_key(cfg)] if not cfg.regions else []
    for r in cfg.regions:
        if (key := region_key(cfg, r)) not in keys:
            keys.append(key)
    return keys


def open_model(cfg: Config, key: ModelKey | None = None) -> Classifier:
    """Load a configured model (`key`: a region's (model, labels); default the main one) and run it once on a
    blank frame, so a model that cannot run is refused here.

    Raises:
        EdgeError: `<config file>: model: <the model's problem>`, one line.
    """
    m = cfg.model
    path, labels = key or main_key(cfg)
    verify = verifier(cfg)  # a bad key names its own setting: not wrapped as the model's problem
    try:
        clf = load_model(path, labels=labels, device=m.device, threads=m.threads, verify=verify)
    except UntrustedModel as e:
        raise UntrustedModel(f"{cfg.source}: model: {e}") from None
    except EdgeError as e:
        raise EdgeError(f"{cfg.source}: model: {e}") from None
    try:
        clf.warm_up()
    except EdgeError as e:
        clf.close()
        raise EdgeError(f"{cfg.source}: model: {e}") from None
    return clf


def verifier(cfg: Config) -> Callable[[Path], bytes] | None:
    """With `[model] trusted_keys`: a function giving a file's bytes once its signature verifies with one of the
    keys (parsed now, strictly; a bad key is an error naming the file); None without them."""
    if not cfg.model.trusted_keys:
        return None
    try:
        keys = load_trusted_keys(cfg.model.trusted_keys)
    except EdgeError as e:
        raise EdgeError(f"{cfg.source}: model.trusted_keys: {e}") from None
    return lambda path: read_verified(path, keys)


def open_workers(cfg: Config) -> list[dict[ModelKey, Classifier]]:
    """Every model the config needs, once per worker (`model.workers`)."""
    return open_per_worker(model_keys(cfg), cfg.model.workers, lambda key: open_model(cfg, key))


def open_per_worker(keys: Sequence[ModelKey], workers: int,
                    open_one: Callable[[ModelKey], Classifier]) -> list[dict[ModelKey, Classifier]]:  # fmt: skip
    """Each worker's interpreters, one per distinct model; all closed again when one fails to open."""
    opened: list[dict[ModelKey, Classifier]] = []
    try:
        for _ in range(workers):
            opened.append({})
            for key in keys:
                opened[-1][key] = open_one(key)
    except Exception:
        for worker in opened:
            for clf in worker.values():
                clf.close()
        raise
    return opened
