"""Static twins: each (task, seed)'s run without seeds, played once and remembered.

The reward compares an episode with its static twin; the twin depends only on the task,
the seed and Esper's run settings, so Simic plays it once and keeps its result in a
JSON file per twin under `directory`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from esper.fsutil import atomic_write
from esper.simic.curriculum import Task
from esper.simic.episodes import STATIC, EpisodeResult, EpisodeSpec, EpisodeWorkers

# Part of every twin's key: a twin remembered in another layout of EpisodeResult is played again.
_TWIN_FORMAT = "twin/2"


def twin_key(task: Task, seed: int) -> str:
    text = json.dumps([_TWIN_FORMAT, repr(task), seed], sort_keys=True)
    return f"{task.name}-s{seed}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


class StaticTwins:
    def __init__(self, directory: Path, *, assets_dir: str = "", tasks_dir: str = "") -> None:
        self._directory = directory
        self._assets_dir = assets_dir
        self._tasks_dir = tasks_dir

    def results(
        self, pairs: Sequence[tuple[Task, int]], workers: EpisodeWorkers
    ) -> dict[tuple[str, int], EpisodeResult]:
        """The static twin of every (task, seed), playing those not played before."""
        found: dict[tuple[str, int], EpisodeResult] = {}
        missing = []
        for task, seed in pairs:
            path = self._directory / f"{twin_key(task, seed)}.json"
            if path.is_file():
                found[(task.name, seed)] = EpisodeResult(**{**json.loads(path.read_text()), "transitions": ()})
            else:
                missing.append((task, seed))
        specs = [
            EpisodeSpec(task, seed, STATIC, record=False, assets_dir=self._assets_dir, tasks_dir=self._tasks_dir)
            for task, seed in missing
        ]
        for (task, seed), result in zip(missing, workers.play(specs), strict=True):
            if result.error:
                raise RuntimeError(f"static twin of {task.name} seed {seed} failed: {result.error}")
            data = dataclasses.asdict(result)
            data["transitions"] = []
            self._directory.mkdir(parents=True, exist_ok=True)
            atomic_write(self._directory / f"{twin_key(task, seed)}.json", json.dumps(data).encode())
            found[(task.name, seed)] = result
        return found
