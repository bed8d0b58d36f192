"""The web demo's JSON routes, through the ASGI app (local mode): what each module
answers, refuses, and emits."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from examples.shop_demo.web import create_app
from examples.shop_demo.web.barcodes import check_digit, ean13
from examples.shop_demo.web.imports import parse_csv, sample_csv


@pytest.fixture
def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_environ: None
) -> Iterator[TestClient]:
    monkeypatch.setenv("SHOP_IMPORT_PACE", "0")
    with TestClient(create_app(tmp_path)) as test_client:
        yield test_client


def wait_for(client: TestClient, path: str, predicate: Callable[[Any], bool]) -> Any:
    """GET ``path`` until ``predicate(json)`` holds, for at most 10 s (the app runs in
    the client's own thread meanwhile)."""
    deadline = time.monotonic() + 10
    while True:
        body = client.get(path).json()
        if predicate(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never satisfied the condition: {body}")
        time.sleep(0.02)


def test_the_shop_actions_are_json_routes_in_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/till/sales", "/api/till/close", "/api/members", "/api/imports"):
        assert "post" in paths[path]
    assert "text/csv" in paths["/api/imports"]["post"]["requestBody"]["content"]
    assert "/events/stream" in paths
    page = client.get("/")
    assert page.status_code == 200
    assert "EventSource" in client.get("/static/dashboard.js").text


def test_the_dashboard_declares_an_icon_that_is_served(client: TestClient) -> None:
    icon = re.search(r'<link rel="icon" href="([^"]+)"', client.get("/").text)
    assert icon is not None
    answer = client.get(icon[1])
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")


def test_the_dashboard_links_the_bus_panel_which_shows_a_voucher_dead_letter(
    client: TestClient,
) -> None:
    assert 'href="/hookbus/"' in client.get("/").text
    assert client.get("/hookbus/").status_code == 200
    sale = client.post("/api/till/sales", json={"total": "5.00", "payment_method": "voucher"})
    assert sale.status_code == 201

    def dead(status: dict[str, Any]) -> bool:
        return any(
            row["subscriber"] == "accounting" and row["dead_letters"] == 1
            for row in status["subscribers"]
        )

    status = wait_for(client, "/hookbus/api/status", dead)
    assert status["mode"] == "local"
    assert {"kind": "dead_letters", "subscriber": "accounting"}.items() <= next(
        problem for problem in status["problems"] if problem["kind"] == "dead_letters"
    ).items()
    [letter] = client.get("/hookbus/api/dead-letters?subscriber=accounting").json()["dead_letters"]
    assert "unknown payment 'voucher'" in letter["error_message"]


ANN, BOB = "a1" * 12, "b2" * 12  # visitor ids, as a browser makes them


def online_names(client: TestClient, expected: list[str]) -> list[dict[str, object]]:
    """Wait until ``GET /api/presence`` lists exactly ``expected`` (by name); its visitors."""
    body = wait_for(
        client, "/api/presence", lambda b: [v["user"] for v in b["visitors"]] == expected
    )
    visitors: list[dict[str, object]] = body["visitors"]
    return visitors


def test_a_hello_under_a_new_name_replaces_the_old_name(client: TestClient) -> None:
    for visitor, user in ((ANN, "Ann"), (BOB, "Bob")):
        answer = client.post("/api/presence", json={"visitor": visitor, "user": user})
        assert answer.status_code == 202
    online_names(client, ["Ann", "Bob"])

    client.post("/api/presence", json={"visitor": ANN, "user": "Anne-Marie"})
    visitors = online_names(client, ["Anne-Marie", "Bob"])
    assert [v["visitor"] for v in visitors] == [ANN, BOB]
    assert all(isinstance(v["ago"], float) for v in visitors)


@pytest.mark.parametrize(
    "hello",
    [{"user": "Ann"}, {"visitor": "short", "user": "Ann"}, {"visitor": "a b" * 8, "user": "Ann"}],
)
def test_a_hello_needs_a_visitor_id(client: TestClient, hello: dict[str, str]) -> None:
    assert client.post("/api/presence", json=hello).status_code == 422


def test_closing_a_sale_emits_it_and_accounting_books_it(client: TestClient) -> None:
    sale = client.post("/api/till/sales", json={"total": "12.50", "payment_method": "card"})
    assert sale.status_code == 201
    body = sale.json()
    assert body["sale_id"] == 1
    assert len(body["event_id"]) == 36
    assert client.get("/api/till").json()["sales"] == 1

    def booked(counters: dict[str, list[dict[str, object]]]) -> bool:
        return any(
            c["subscriber"] == "accounting" and c["handled"] == 1 for c in counters["counters"]
        )

    wait_for(client, "/api/counters", booked)
    closed = client.post("/api/till/close")
    assert closed.status_code == 200
    assert client.post("/api/till/close").status_code == 409  # nothing open any more


def test_bad_input_gets_a_clear_error(client: TestClient) -> None:
    assert client.post("/api/till/sales", json={"total": "-3"}).status_code == 422
    assert (
        client.post("/api/till/sales", json={"total": "3", "payment_method": "iou"}).status_code
        == 422
    )
    bad_line = client.post("/api/imports", content=b"label,category,price\nlamp,,x\n")
    assert bad_line.status_code == 400
    assert "line 2" in bad_line.json()["detail"]
    no_header = client.post("/api/imports", content=b"lamp,lights,3\n")
    assert no_header.status_code == 400
    assert "header" in no_header.json()["detail"]
    not_text = client.post("/api/imports", content=b"\xff\xfe\x00")
    assert not_text.status_code == 400
    member = {"name": "Camille", "email": "camille@example.org"}
    assert client.post("/api/members", json=member).status_code == 201
    assert client.post("/api/members", json=member).status_code == 409
    assert client.post("/api/members", json={"name": "X", "email": "nope"}).status_code == 422


def test_an_import_gives_every_article_a_barcode(client: TestClient) -> None:
    started = client.post(
        "/api/imports", content=sample_csv(12), headers={"content-type": "text/csv"}
    )
    assert started.status_code == 202
    assert started.json()["articles"] == 12

    def all_coded(articles: list[dict[str, object]]) -> bool:
        return len(articles) == 12 and all(a["barcode"] for a in articles)

    articles = wait_for(client, "/api/articles", all_coded)
    assert {a["barcode"] for a in articles} == {ean13(a["article_id"]) for a in articles}


def test_ean13_check_digit() -> None:
    assert check_digit("400638133393") == "1"  # a published EAN-13: 4006381333931
    assert ean13(1) == "2000000000015"
    with pytest.raises(ValueError, match="does not fit"):
        ean13(10**11)


def test_parse_csv_reads_the_sample() -> None:
    articles = parse_csv(sample_csv(3))
    assert [a.label for a in articles] == [
        "Chaise en bois n°1",
        "Lampe de chevet n°2",
        "Pull en laine n°3",
    ]
