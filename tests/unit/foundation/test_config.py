# SPDX-License-Identifier: Apache-2.0
"""agent.yaml: defaults, dotted-path errors, permissions, and the documented default file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from agent.cli import main as agent_main
from agent.config import AgentConfig, ConfigError, load_config, parse_config
from tests.support import REPO


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "agent.yaml"
    p.write_text(text)
    p.chmod(mode)
    return p


def test_empty_document_is_the_embedded_default() -> None:
    assert parse_config(None) == AgentConfig()
    assert parse_config({}) == AgentConfig()


def test_config_is_frozen() -> None:
    c = AgentConfig()
    with pytest.raises(ValidationError):
        c.behavior.window_seconds = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"bogus": 1}, "bogus: unknown key"),
        ({"behavior": {"nope": 1}}, "behavior.nope: unknown key"),
        ({"behavior": {"window_seconds": "soon"}}, "behavior.window_seconds: "),
        ({"behavior": {"window_seconds": -1}}, "behavior.window_seconds: "),
        ({"response": {"mode": "destroy"}}, "response.mode: "),
        ({"runtime": {"docker": {"a": 1}}}, "runtime.docker: "),
        ({"ebpf": {"sensitive_paths": [1, {"x": 2}]}}, "ebpf.sensitive_paths[1]: "),
        ({"runtime": {"docker_url": "ssh://root@elsewhere"}}, "runtime.docker_url: "),
        ({"runtime": {"docker_url": "/var/run/docker.sock"}}, "runtime.docker_url: "),
    ],
)
def test_errors_name_the_dotted_path(doc: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(doc, "test.yaml")
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config([1, 2])
    assert err.value.problems == ["(top level): expected a mapping, got list"]


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    p = write(tmp_path, "behavior:\n  window_seconds: [1,\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert err.value.problems[0].startswith("line 3"), err.value.problems


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_group_or_world_writable_file_is_refused(tmp_path: Path, mode: int) -> None:
    p = write(tmp_path, "{}\n", mode)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert "group- or world-writable" in err.value.problems[0]


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.yaml")
    assert err.value.problems == ["(file): does not exist"]


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "behavior:\n  window_seconds: 5\n")
    assert agent_main(["check-config", "--config", str(good)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    bad = write(tmp_path, "behavior:\n  window_seconds: five\nextra_thing: 1\n")
    assert agent_main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "extra_thing: unknown key" in err
    assert any(line.startswith("behavior.window_seconds: ") for line in err)


def test_shipped_config_is_the_rendered_default() -> None:
    from agent.configdoc import render_default_config

    shipped = (REPO / "config" / "agent.yaml").read_text()
    assert shipped == render_default_config(), "config/agent.yaml is stale: run `make config`"


def _keys(model: BaseModel, prefix: str = "") -> list[str]:
    out = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        out.append(path)
        if isinstance(value, BaseModel):
            out.extend(_keys(value, path + "."))
    return out


def _doc_keys(doc: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append(f"{prefix}{k}")
            out.extend(_doc_keys(v, f"{prefix}{k}."))
    return out


def test_shipped_config_documents_every_key_with_its_default() -> None:
    path = REPO / "config" / "agent.yaml"
    doc = yaml.safe_load(path.read_text())
    assert parse_config(doc, str(path)) == AgentConfig(), "config/agent.yaml must equal the embedded defaults"
    missing = sorted(set(_keys(AgentConfig())) - set(_doc_keys(doc)))
    assert not missing, f"config/agent.yaml does not document: {missing}"
    # every key is documented in place: the line above it is a comment
    lines = path.read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        above = lines[i - 1].strip() if i else ""
        if not above.startswith("#"):
            undocumented.append(f"line {i + 1}: {stripped}")
    assert not undocumented, undocumented


def test_renamed_sections_are_migrated_with_a_warning() -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        cfg = parse_config({"scan": {"interval_seconds": 60}, "vulndb": {"path": "/srv/v.sqlite"}})
    assert cfg.vuln.interval_seconds == 60
    assert cfg.vuln.db.path == Path("/srv/v.sqlite")
    warned = {(e["key"], e["use"]) for e in logs if e["event"] == "config_key_deprecated"}
    assert warned == {("scan", "vuln"), ("vulndb", "vuln.db")}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"vulndb": {"path": "/a"}, "vuln": {"db": {"path": "/b"}}}, "vulndb: renamed to vuln.db, which is also set"),
        ({"scan": {"on_start": False}, "vuln": {"on_start": True}}, "scan.on_start: renamed to vuln.on_start"),
        ({"scan": {"bogus": 1}}, "vuln.bogus: unknown key"),
    ],
)
def test_renamed_sections_conflicts_and_errors(doc: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert any(expected in p for p in err.value.problems), err.value.problems


def test_retired_keys_are_dropped_with_a_warning() -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        cfg = parse_config({"logs": {"drain_sim_th": 0.5, "anomaly_threshold": 0.2, "ngram": 4}})
    assert cfg.logs.ngram == 4
    retired = {e["key"] for e in logs if e["event"] == "config_key_retired"}
    assert retired == {"logs.drain_sim_th", "logs.anomaly_threshold"}


@pytest.mark.parametrize("value", [1e400000, float("inf"), float("nan")])
def test_numbers_must_be_finite(value: float) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"vuln": {"interval_seconds": value}})
    assert any(p.startswith("vuln.interval_seconds:") for p in err.value.problems), err.value.problems
