"""A corpus of bad broker entries: what another program, a hostile client or a crash
can leave where hookbus reads its events.

Each item is ``(label, fields)``: the fields of one stream entry (for a backend with
plain message bodies, the ``e`` value is the body). None of them is a valid envelope
of the type ``expected``; ``other`` is another declared type, whose valid envelopes
must be refused too.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hookbus import Envelope, Event

Fields = dict[bytes, bytes]


def envelope_doc(event_type: str, data: Any, event_id: str = "bad-1") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "other-program",
        "type": event_type,
        "data": data,
    }


def _e(value: bytes | str | dict[str, Any] | list[Any] | int | None) -> Fields:
    if isinstance(value, str):
        return {b"e": value.encode()}
    if isinstance(value, bytes):
        return {b"e": value}
    return {b"e": json.dumps(value).encode()}


def fixed_corpus(
    expected: str, other: Event, valid_data: dict[str, Any]
) -> list[tuple[str, Fields]]:
    """Hand-written bad entries, one of each kind."""
    good = envelope_doc(expected, valid_data)
    other_envelope = Envelope("other-1", other, "other-program").encode()
    return [
        ("deep-list", _e(b"[" * 5000 + b"]" * 5000)),
        ("deep-object", _e(b'{"a":' * 3000 + b"1" + b"}" * 3000)),
        (
            "deep-data",
            _e(json.dumps(envelope_doc(expected, None))[:-5] + "[" * 4000 + "]" * 4000 + "}"),
        ),
        ("many-fields", {f"f{i}".encode(): b"x" for i in range(20_000)}),
        ("many-fields-bad-e", {b"e": b"{", **{f"f{i}".encode(): b"y" for i in range(5_000)}}),
        ("multi-megabyte", _e(b"x" * (3 * 1024 * 1024))),
        ("multi-megabyte-json", _e(json.dumps(envelope_doc(expected, {"blob": "z" * 2_500_000})))),
        ("empty", _e(b"")),
        ("nul-bytes", _e(b"\x00" * 100)),
        ("invalid-utf8", _e(b"\xff\xfe\xfd")),
        (
            "invalid-utf8-in-string",
            _e(json.dumps(good).encode().replace(b"other-program", b"\xff\xfe")),
        ),
        ("lone-surrogate", _e(json.dumps(good).replace("other-program", "\\ud800"))),
        ("binary-field-name", {b"\xff\xfe": b"\x00\x01"}),
        ("no-e-field", {b"payload": b"hello"}),
        ("json-array", _e([])),
        ("json-string", _e('"just a string"')),
        ("json-number", _e(123)),
        ("json-null", _e(None)),
        ("json-true", _e("true")),
        ("huge-int", _e(b"1" * 100_000)),
        ("nan", _e(json.dumps({**good, "data": dict.fromkeys(valid_data, float("nan"))}))),
        ("plain-object", _e({"hello": "world"})),
        ("old-specversion", _e({**good, "specversion": "0.3"})),
        ("missing-id", _e({k: v for k, v in good.items() if k != "id"})),
        ("id-not-a-string", _e({**good, "id": 5})),
        ("type-not-a-string", _e({**good, "type": ["x"]})),
        ("unknown-type", _e({**good, "type": "nobody.declared.this"})),
        ("data-a-list", _e({**good, "data": [1, 2, 3]})),
        ("data-wrong-field-type", _e({**good, "data": {k: [v] for k, v in valid_data.items()}})),
        ("data-missing", _e({k: v for k, v in good.items() if k != "data"})),
        ("data-extra-field", _e({**good, "data": {**valid_data, "unexpected": 1}})),
        ("other-declared-type", _e(other_envelope)),
    ]


def generated_corpus(
    expected: str, valid_data: dict[str, Any], count: int, seed: int = 8
) -> list[tuple[str, Fields]]:
    """``count`` more, generated: truncated envelopes, random bytes, wrong shapes."""
    rng = random.Random(seed)
    valid = json.dumps(envelope_doc(expected, valid_data)).encode()
    shapes: list[Any] = [
        [valid_data],
        {"data": valid_data},
        envelope_doc(expected, "text"),
        envelope_doc(expected, {k: {"nested": v} for k, v in valid_data.items()}),
        {**envelope_doc(expected, valid_data), "source": 7},
        {**envelope_doc(expected, valid_data), "specversion": 1.0},
    ]
    corpus: list[tuple[str, Fields]] = []
    for index in range(count):
        kind = index % 3
        if kind == 0:  # every proper prefix of a JSON object is invalid JSON
            cut = rng.randrange(0, len(valid) - 1)
            corpus.append((f"truncated-{cut}", _e(valid[:cut])))
        elif kind == 1:
            size = rng.choice((1, 7, 64, 1000, 20_000))
            corpus.append((f"random-{size}", _e(rng.randbytes(size))))
        else:
            shape = shapes[rng.randrange(len(shapes))]
            corpus.append((f"shape-{index}", _e(json.dumps(shape))))
    return corpus
