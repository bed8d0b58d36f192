"""``hookbus events``: the catalogue's command, through click's runner and as a process."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from hookbus.cli import main

TARGET = "tests.apps.catalogue:bus"
ROOT = Path(__file__).parent.parent
ASYNCAPI_SCHEMA = Path(__file__).parent / "asyncapi" / "asyncapi-3.0.0.json"


@dataclass
class Result:
    exit_code: int
    output: str
    stderr: str


def run(*args: str) -> Result:
    """``hookbus events TARGET *args`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    loggers = [logging.getLogger(), logging.getLogger("hookbus")]
    levels = [logger.level for logger in loggers]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["events", TARGET, *args])
    finally:  # the command sets the logging levels of its process: give this one its own back
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    return Result(code, out.getvalue(), err.getvalue())


def run_process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookbus", "events", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_"))},
        timeout=60,
        check=False,
    )


def test_the_default_is_a_table() -> None:
    result = run_process(TARGET)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "tests.apps.catalogue: 2 event types" in lines[0]
    row = next(line for line in lines if "cli.sale" in line)
    assert "2 (upcast from 1)" in row
    assert "durable" in row
    assert "sale_id: int" in row
    assert "books" in row
    assert any("cli.seen" in line and "ephemeral" in line for line in lines)
    assert 'note: str = ""' in result.stdout
    assert result.stderr == ""


def test_json_lists_the_catalogue() -> None:
    result = run("--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    sale = next(e for e in doc["events"] if e["name"] == "cli.sale")
    assert (sale["version"], sale["durable"], sale["upcasters"]) == (2, True, [1])
    assert [s["id"] for s in sale["subscribers"]] == ["books", "receipts"]
    assert sale["subscribers"][1]["handler"] == "tests.apps.catalogue.print_receipt"


def test_json_schema_gives_each_event_schema() -> None:
    result = run("--json-schema")
    assert result.exit_code == 0, result.output
    schemas = json.loads(result.output)
    assert schemas["cli.sale"]["$id"] == "urn:hookbus:event:cli.sale:2"
    assert schemas["cli.sale"]["required"] == ["sale_id", "total", "currency"]


def test_asyncapi_is_a_valid_document() -> None:
    result = run_process(TARGET, "--asyncapi", "--title", "till", "--app-version", "2.1.0")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    validator = jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text()))
    assert list(validator.iter_errors(document)) == []
    assert document["info"]["title"] == "till"
    assert document["info"]["version"] == "2.1.0"
    assert set(document["channels"]) == {"cli.sale", "cli.seen"}
    receive = document["operations"]["tests.apps.catalogue.receive.cli.sale"]
    assert receive["x-hookbus-subscribers"] == ["books", "receipts"]


def test_check_passes_against_its_own_baseline_and_fails_on_breaking_changes(
    tmp_path: Path,
) -> None:
    baseline = tmp_path / "events.json"
    saved = run_process(TARGET, "--save", str(baseline))
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout == ""
    assert saved.stderr == f"saved 2 event types to {baseline}\n"
    same = run_process(TARGET, "--check", str(baseline))
    assert (same.returncode, same.stdout) == (0, "compatible with the baseline\n")
    # The baseline as an earlier release had it: a field 'till' since removed, the
    # ephemeral event durable, and a type that no longer exists.
    doc = json.loads(baseline.read_text())
    sale = next(e for e in doc["events"] if e["name"] == "cli.sale")
    sale["schema"]["properties"]["till"] = {"type": "string"}
    seen = next(e for e in doc["events"] if e["name"] == "cli.seen")
    seen["durable"] = True
    doc["events"].append({**seen, "name": "cli.gone"})
    baseline.write_text(json.dumps(doc))
    result = run_process(TARGET, "--check", str(baseline))
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "breaking: cli.gone: event type removed",
        "breaking: cli.sale.till: field removed",
        "breaking: cli.seen: durability changed: durable → ephemeral",
        "3 breaking changes",
    ]
    report = run("--check", str(baseline), "--json")
    assert report.exit_code == 1
    parsed = json.loads(report.output)
    assert parsed["compatible"] is False
    assert {"event": "cli.sale", "field": "till", "breaking": True, "message": "field removed"} in (
        parsed["changes"]
    )


def test_non_breaking_changes_are_listed_and_pass(tmp_path: Path) -> None:
    baseline = tmp_path / "events.json"
    assert run("--save", str(baseline)).exit_code == 0
    doc = json.loads(baseline.read_text())
    sale = next(e for e in doc["events"] if e["name"] == "cli.sale")
    del sale["schema"]["properties"]["note"]  # since added, optional
    doc["events"] = [e for e in doc["events"] if e["name"] != "cli.seen"]  # since added
    baseline.write_text(json.dumps(doc))
    result = run("--check", str(baseline))
    assert result.exit_code == 0, result.output
    assert "ok: cli.sale.note: optional field added" in result.output
    assert "ok: cli.seen: new event type" in result.output
    assert result.output.endswith("compatible with the baseline\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nomodule"], "expected module:attribute"),
        (["tests.apps.missing:bus"], "cannot import 'tests.apps.missing'"),
        (["tests.apps.catalogue:nothing"], "has no attribute 'nothing'"),
        (["tests.apps.catalogue:__name__"], "is str, not an EventBus"),
        (["tests.apps.catalogue:Sale"], "cannot load tests.apps.catalogue:Sale: InvalidEventError"),
        ([TARGET, "--check", "/nonexistent/events.json"], "cannot read '/nonexistent/events.json'"),
        ([TARGET, "--save", "/nonexistent/dir/events.json"], "cannot write"),
    ],
)
def test_errors_are_one_line_without_a_traceback(args: list[str], message: str) -> None:
    result = run_process(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_baseline_is_an_error(tmp_path: Path) -> None:
    baseline = tmp_path / "events.json"
    baseline.write_text('{"catalogue": 1}')
    result = run("--check", str(baseline))
    assert result.exit_code == 2
    assert "not a saved hookbus catalogue" in result.stderr


def test_output_options_exclude_each_other() -> None:
    result = run("--asyncapi", "--json-schema")
    assert result.exit_code == 2
    assert "choose one of --json-schema, --asyncapi and --check" in result.stderr
