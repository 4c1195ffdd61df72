"""A real Prometheus (Debian's ``prometheus`` 2.42) on 127.0.0.1 that scrapes HAProxy exporters and
evaluates the package's alert rules, so the alerts the package plans are measured, not assumed.

The scrape targets get the labels Managed Service for Prometheus attaches to a pod's metrics
(``namespace``, ``pod``: https://cloud.google.com/stackdriver/docs/managed-prometheus/setup-managed),
so the expressions run unchanged. Every wait is bounded; nothing sleeps a fixed time.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from datetime import datetime
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .procs import LOOPBACK, Proc, free_port


def _unix(stamp: str) -> float:
    """RFC 3339 with up to nanoseconds (Go's format) -> Unix time; 0 for Go's zero time."""
    match = re.fullmatch(r"([^.Z+]+)(\.\d+)?(Z|[+-]\d\d:\d\d)", stamp)
    if not match or match[1].startswith("0001-"):
        return 0.0
    zone = "+00:00" if match[3] == "Z" else match[3]
    return datetime.fromisoformat(match[1] + zone).timestamp() + float(match[2] or 0)


class Prometheus:
    """``prometheus`` in the foreground, scraping ``targets`` (``host:port`` -> labels) every
    ``interval`` seconds and evaluating ``rules`` (a rule file's text) as often."""

    def __init__(self, rules: str, targets: Mapping[str, Mapping[str, str]], workdir: Path, interval: int = 1) -> None:
        self.port = free_port()
        (workdir / "rules.yml").write_text(rules)
        config = {
            "global": {"scrape_interval": f"{interval}s", "evaluation_interval": f"{interval}s",
                       "scrape_timeout": f"{interval}s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [{"job_name": "haproxy", "metrics_path": "/metrics", "static_configs": [
                {"targets": [target], "labels": dict(labels)} for target, labels in targets.items()]}],
        }
        (workdir / "prometheus.yml").write_text(json.dumps(config))
        self.proc = Proc(["prometheus", f"--config.file={workdir / 'prometheus.yml'}",
                          f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address={LOOPBACK}:{self.port}"],
                         workdir / "prometheus.log")
        self.proc.wait_port(self.port, 30.0)
        self.wait(lambda: self._get("/-/ready", raw=True) == 200, 30.0, "Prometheus ready")

    def _get(self, path: str, raw: bool = False) -> Any:
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            return response.status if raw else json.loads(body)["data"]
        except OSError:
            return None
        finally:
            connection.close()

    def query(self, expr: str) -> list[dict]:
        """The instant vector of ``expr`` now (``/api/v1/query``)."""
        return (self._get(f"/api/v1/query?query={quote(expr)}") or {}).get("result", [])

    def alerts(self) -> list[dict]:
        """Pending and firing alerts (``/api/v1/alerts``): each with ``labels`` and ``state``."""
        return (self._get("/api/v1/alerts") or {}).get("alerts", [])

    def firing(self) -> set[str]:
        """Names of the alerts firing now."""
        return {a["labels"]["alertname"] for a in self.alerts() if a["state"] == "firing"}

    def last_evaluation(self) -> float:
        """Unix time of the rule group's latest evaluation (``/api/v1/rules``), 0 before the first."""
        groups = (self._get("/api/v1/rules") or {}).get("groups", [])
        stamps = [g.get("lastEvaluation", "") for g in groups]
        return min((_unix(s) for s in stamps), default=0.0)

    def scraped(self, expr: str, expected: float) -> bool:
        """Whether the newest scrape shows ``expr`` (a sum) at ``expected`` or more."""
        found = self.query(expr)
        return bool(found) and float(found[0]["value"][1]) >= expected

    @staticmethod
    def wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll ``condition`` until true; seconds it took. Raises ``TimeoutError`` naming ``what``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if condition():
                return time.monotonic() - start
            time.sleep(0.1)
        raise TimeoutError(f"{what}: not within {timeout} s")

    def stop(self) -> None:
        self.proc.stop()
