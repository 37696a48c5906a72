# SPDX-License-Identifier: Apache-2.0
"""The agent's wiring hands the response's fast path to the eBPF source (must-act records go
straight to it), and without a response the kernel stops nothing."""

from __future__ import annotations

from collections.abc import Callable

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.response.component import ResponseComponent
from agent.sources.ebpf import EbpfSource
from agent.wiring import Generation, wire


def stage(gen: Generation, name: str) -> object | None:
    return next((s.component for s in gen.stages if s.name == name), None)


def test_the_ebpf_source_gets_the_fast_path(make_ctx: Callable[..., AgentContext]) -> None:
    ctx = make_ctx(AgentConfig())
    gen = Generation(ctx, ctx.config)
    wire(gen)
    response, ebpf = stage(gen, "response"), stage(gen, "ebpf")
    assert isinstance(response, ResponseComponent) and isinstance(ebpf, EbpfSource)
    assert ebpf.act.acts is response.fast
    assert ebpf.act.settings is ctx.config.response.kernel_stop


def test_without_a_response_nothing_is_stopped(make_ctx: Callable[..., AgentContext]) -> None:
    cfg = AgentConfig.model_validate({"response": {"enabled": False}})
    ctx = make_ctx(cfg)
    gen = Generation(ctx, cfg)
    wire(gen)
    ebpf = stage(gen, "ebpf")
    assert isinstance(ebpf, EbpfSource) and ebpf.act.acts is None
