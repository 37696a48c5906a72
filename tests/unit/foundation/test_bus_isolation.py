# SPDX-License-Identifier: Apache-2.0
"""One subscriber or prepare step that raises never loses the value for the others."""

from __future__ import annotations

from typing import Any

from agent.pipeline import Bus


def test_failing_subscriber_counted_and_later_subscribers_still_called() -> None:
    bus: Bus[str] = Bus("t")
    seen: list[str] = []

    def broken(v: str) -> None:
        v.encode("utf-8")  # a lone surrogate: UnicodeEncodeError

    bus.subscribe(broken, name="store")
    bus.subscribe(seen.append, name="outputs")
    bus.start()
    try:
        for v in ("ok", "bad \udfff", "after"):
            bus.publish(v)
        assert bus.drain(5)
    finally:
        bus.stop()
    assert seen == ["ok", "bad \udfff", "after"]
    assert bus.stats.errors == {"store": 1} and bus.stats.processed == 3


def test_failing_prepare_step_counted_and_value_delivered_as_it_was() -> None:
    bus: Bus[str] = Bus("t")
    seen: list[str] = []

    def enrich(v: str) -> str:
        if v == "boom":
            raise RecursionError("maximum recursion depth exceeded")
        return v.upper()

    bus.add_prepare(enrich)
    bus.add_prepare(lambda v: None if v == "DROP" else v)
    bus.subscribe(seen.append, name="sink")
    bus.start()
    try:
        for v in ("a", "boom", "drop", "b"):
            bus.publish(v)
        assert bus.drain(5)
    finally:
        bus.stop()
    assert seen == ["A", "boom", "B"]
    errors = bus.stats.errors
    assert list(errors.values()) == [1] and next(iter(errors)).startswith("prepare:")
    assert bus.stats.filtered == 1


def test_subscriber_errors_are_exported_per_bus_and_subscriber(make_ctx: Any) -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from agent.findings import Finding, Severity, Source
    from agent.outputs.metrics import RuntimeCollector

    ctx = make_ctx()

    def store(f: Finding) -> None:
        f.summary.encode("utf-8")

    ctx.findings.subscribe(store, name="store")
    ctx.findings.process(
        Finding(container=None, source=Source.RULE, detector_id="RG-0002", severity=Severity.HIGH, summary="\udfff")
    )
    registry = CollectorRegistry()
    registry.register(RuntimeCollector(ctx, dict, dict))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(generate_latest(registry).decode())
        for s in fam.samples
    }
    assert samples[("riskguard_bus_errors_total", (("bus", "findings"), ("subscriber", "store")))] == 1
