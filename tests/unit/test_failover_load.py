"""The load generator: its limits and summaries (pure), and its pacing against a loopback server."""

from __future__ import annotations

import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hakit.failover.load import LoadGenerator, LoadSample, LoadSpec, parse_spec, percentile, summarize


def test_percentile_nearest_rank() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([5.0], 99) == 5.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0


def test_summary_counts_errors_by_kind_and_latency_of_answers_only() -> None:
    samples = [LoadSample(t / 10, "keepalive" if t % 2 else "fresh", t != 3, 0.001 * (t + 1)) for t in range(10)]
    s = summarize(samples, 0.0, 1.0)
    assert (s.requests, s.errors, s.errors_by_kind) == (10, 1, {"keepalive": 1, "fresh": 0})
    assert s.rate_hz == 10.0
    assert s.p50_ms == 6.0 and s.p99_ms == 10.0  # nearest rank of the 9 answered: 1, 2, 3, 5, 6, ..., 10 ms
    assert "1 failed (keepalive 1)" in s.describe()
    assert summarize(samples, 0.5, 1.0).requests == 5
    assert summarize([], 0, 1).describe() == "no load request in the window"


@pytest.mark.parametrize("kwargs, words", [
    ({"rate_hz": 0}, "rate_hz 0: between 1 and 1000"),
    ({"rate_hz": 5000}, "rate_hz 5000"),
    ({"keepalive": 0, "fresh": 0}, "at least one worker"),
    ({"keepalive": 65}, "keepalive 65: between 0 and 64"),
    ({"rate_hz": 900, "keepalive": 2, "fresh": 2}, "more than 200/s per worker"),
    ({"timeout_s": 0}, "timeout_s 0"),
    ({"max_s": 0}, "max_s 0"),
])
def test_bad_specs_name_the_value_and_the_range(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match="load: ") as e:
        LoadSpec(**kwargs)
    assert words in str(e.value)


def test_parse_spec() -> None:
    assert parse_spec("300") == LoadSpec(rate_hz=300)
    assert parse_spec("120, 2, 6") == LoadSpec(rate_hz=120, keepalive=2, fresh=6)
    for bad in ("fast", "1,2", "100,x,2"):
        with pytest.raises(ValueError, match="load "):
            parse_spec(bad)
    with pytest.raises(ValueError, match="rate_hz 0"):
        parse_spec("0")


class _Server:
    """A loopback HTTP/1.1 server that counts connections and requests."""

    def __init__(self) -> None:
        counts = self.counts = {"connections": 0, "requests": 0}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with lock:
                    counts["connections"] += 1

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with lock:
                    counts["requests"] += 1
                body = b"ok\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "_Server":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_generator_paces_reuses_keepalive_connections_and_stops_by_itself() -> None:
    spec = LoadSpec(rate_hz=100, keepalive=2, fresh=2, max_s=1.5)
    with _Server() as srv:
        with LoadGenerator("127.0.0.1", spec, port=srv.port) as gen:
            for th in gen._threads:  # max_s ends every worker without a stop
                th.join(timeout=10)
            assert not any(th.is_alive() for th in gen._threads)
        s = gen.summary()
    fresh = sum(1 for x in gen.samples if x.kind == "fresh")
    keep = sum(1 for x in gen.samples if x.kind == "keepalive")
    assert s.errors == 0, gen.samples[:3]
    assert 100 <= s.requests <= 160  # 1.5 s at 100/s, give or take a busy machine
    assert srv.counts["requests"] == s.requests
    # every fresh request opened a connection; the two keep-alive workers one each
    assert srv.counts["connections"] == fresh + 2 and keep > 2


def test_generator_counts_refused_connections_and_goes_on() -> None:
    with _Server() as srv:
        port = srv.port
    # the server is gone: every request is refused, and each is counted once at its own time
    with LoadGenerator("127.0.0.1", LoadSpec(rate_hz=40, keepalive=1, fresh=1, max_s=0.5 + 0.5), port=port) as gen:
        for th in gen._threads:
            th.join(timeout=10)
    s = gen.summary()
    assert s.requests >= 30 and s.errors == s.requests
    assert s.errors_by_kind["keepalive"] > 0 and s.errors_by_kind["fresh"] > 0 and math.isnan(s.p50_ms)


def test_bench_refuses_a_bad_load_before_any_host_is_touched(tmp_path) -> None:
    from hakit.bench import bench_failover, bench_soak

    with pytest.raises(ValueError, match="rate_hz 0.0: between 1 and 1000"):
        bench_soak("params/lab.yaml", 1, load="0", out_root=tmp_path)
    with pytest.raises(ValueError, match="load 'x,1'"):
        bench_failover("params/lab.yaml", ["fast"], 1, load="x,1", out_root=tmp_path)
    assert not any(tmp_path.iterdir())  # no result folder either
