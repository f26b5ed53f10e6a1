"""Rich displays: every engine object a notebook shows has readable HTML and plain text."""

from __future__ import annotations

import pytest

from sandbox.display import Diff, History, Layer, Stats
from tests.integration.container_env import engine  # noqa: F401  (module fixture)


def test_reprs_of_images_containers_layers_diffs_history_and_stats(engine):  # noqa: F811
    image = engine.images.get("busybox")
    assert "<table" in image._repr_html_() and "busybox:latest" in image.text()
    c = engine.containers.run("busybox", ["sh", "-c", "echo x > /new; rm /etc/passwd; sleep 30"],
                              detach=True, name="shown")
    try:
        import time
        time.sleep(0.3)
        html = c._repr_html_()
        assert "shown" in html and "running" in html
        diff = c.changes()
        assert isinstance(diff, Diff) and diff.counts() == {"A": 1, "C": 1, "D": 1}
        assert "<details" in diff._repr_html_() and "A /new" in diff.text()
        stats = c.stats()
        assert isinstance(stats, Stats) and stats.summary()["name"] == "shown"
        assert "MEM USAGE" in stats.text() and "<table" in stats._repr_html_()
        history = engine.images.history("busybox")
        assert isinstance(history, History) and "CREATED BY" in history.text()
        assert "<table" in history._repr_html_()
        layers = engine.images.layers("busybox")
        assert len(layers) == 1 and isinstance(layers[0], Layer)
        added = layers[0].changes()
        assert ("A", "/bin") in added and all(k == "A" for k, _ in added)   # the first layer only adds
        assert "<details" in layers[0]._repr_html_() and "Layer 0" in repr(layers[0])
    finally:
        c.remove(force=True)
    with pytest.raises(Exception):  # noqa: B017 - whichever error a removed container gives
        c.reload()
    assert "shown" in c._repr_html_()      # a removed container still shows its last state
