"""Bad input through the real app's API, over gradio_client and over raw HTTP.

Every case must come back as a clear, specific message (the service's `InputError` text,
titled "Invalid input"), never a traceback, never the generic "Something went wrong", and
never take the server down. Text in any script, with emoji or control characters, must work.
The last test checks the same server still answers a normal request.

Runs against the session app of conftest.py (`app_url`: shapes-32, emoji-32, plus a
`broken` folder and an `evaluator` folder that are not selectable).
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from test_reliability_support import RawResult, raw_call

GOOD = ["a red circle", 3, 0.7, 1, "shapes-32", 0]  # prompts, seed, psi, images, checkpoint, best of N
MB = 1 << 20
GENERIC = "Something went wrong"


def gen(**changes) -> list:
    """GOOD with some arguments replaced, by name."""
    names = ["prompts", "seed", "psi", "n", "ckpt", "best"]
    return [changes.get(n, v) for n, v in zip(names, GOOD)]


# (case id, /generate arguments, regex the message must match). Sent both ways.
BAD_GENERATE = [
    ("empty", gen(prompts=""), "Enter a prompt"),
    ("whitespace", gen(prompts=" \t  \u3000 "), "Enter a prompt"),
    ("blank-lines", gen(prompts="\n\r\n  \n"), "Enter a prompt"),
    ("null-prompt", gen(prompts=None), "Enter a prompt"),
    ("1MB-prompt", gen(prompts="x" * MB), "1,048,576 characters long"),
    ("1MB-newlines", gen(prompts="\n" * MB), "characters long"),
    ("1001-chars", gen(prompts="y" * 1001), "Prompt 1 is 1,001 characters long; the limit is 1,000"),
    ("100-prompts-text", gen(prompts="\n".join(f"red circle {i}" for i in range(100))), r"At most 8 prompts.*got 100"),
    ("100-prompts-list", gen(prompts=[f"red circle {i}" for i in range(100)]), "Prompts must be text"),
    ("prompt-int", gen(prompts=42), "Prompts must be text"),
    ("prompt-dict", gen(prompts={"path": "/etc/passwd"}), "Prompts must be text"),
    ("seed-negative", gen(seed=-1), "Seed must be between 0 and 2,147,483,647"),
    ("seed-2^31", gen(seed=2**31), "Seed must be between"),
    ("seed-huge", gen(seed=10**30), "Seed must be between"),
    ("seed-huge-negative", gen(seed=-(10**30)), "Seed must be between"),
    ("seed-1e300", gen(seed=1e300), "Seed must be between"),
    ("seed-fraction", gen(seed=0.5), "Seed must be a whole number"),
    ("seed-string", gen(seed="7"), "Seed must be a number"),
    ("seed-list", gen(seed=[7]), "Seed must be a number"),
    ("seed-dict", gen(seed={"value": 7}), "Seed must be a number"),
    ("seed-null", gen(seed=None), "Seed must be a number"),
    ("seed-bool", gen(seed=True), "Seed must be a number"),
    ("psi-negative", gen(psi=-0.1), r"Truncation ψ must be between 0.0 and 1.5"),
    ("psi-too-big", gen(psi=1.51), "Truncation ψ must be between"),
    ("psi-1e308", gen(psi=1e308), "Truncation ψ must be between"),
    ("psi-string", gen(psi="0.7"), "Truncation ψ must be a number"),
    ("psi-null", gen(psi=None), "Truncation ψ must be a number"),
    ("psi-list", gen(psi=[0.7]), "Truncation ψ must be a number"),
    ("n-zero", gen(n=0), "Images per prompt must be between 1 and 8"),
    ("n-negative", gen(n=-3), "Images per prompt must be between 1 and 8"),
    ("n-nine", gen(n=9), "Images per prompt must be between 1 and 8"),
    ("n-huge", gen(n=10**9), "Images per prompt must be between 1 and 8"),
    ("n-fraction", gen(n=2.5), "Images per prompt must be a whole number"),
    ("n-string", gen(n="2"), "Images per prompt must be a number"),
    ("n-null", gen(n=None), "Images per prompt must be a number"),
    ("n-dict", gen(n={}), "Images per prompt must be a number"),
    ("best-of-negative", gen(best=-1), "Best of N must be between 0 and 32"),
    ("best-of-huge", gen(best=10**12), "Best of N must be between 0 and 32"),
    ("best-of-string", gen(best="4"), "Best of N must be a number"),
    ("ckpt-unknown", gen(ckpt="nope"), "Unknown checkpoint 'nope'; choose one of: emoji-32, shapes-32"),
    ("ckpt-empty", gen(ckpt=""), "Unknown checkpoint ''"),
    ("ckpt-null", gen(ckpt=None), "Unknown checkpoint None"),
    ("ckpt-int", gen(ckpt=42), "Unknown checkpoint 42"),
    ("ckpt-list", gen(ckpt=["shapes-32"]), "Unknown checkpoint"),
    ("ckpt-dict", gen(ckpt={"name": "shapes-32"}), "Unknown checkpoint"),
    ("ckpt-case", gen(ckpt="SHAPES-32"), "Unknown checkpoint 'SHAPES-32'"),
    ("ckpt-trailing-space", gen(ckpt="shapes-32 "), "Unknown checkpoint"),
    ("ckpt-nul-byte", gen(ckpt="shapes-32\x00"), "Unknown checkpoint"),
    ("ckpt-failed-folder", gen(ckpt="broken"), "Unknown checkpoint 'broken'"),
    ("ckpt-not-a-generator", gen(ckpt="evaluator"), "Unknown checkpoint 'evaluator'"),
    ("ckpt-traversal", gen(ckpt="../../etc/passwd"), "Checkpoint paths are not accepted"),
    ("ckpt-absolute", gen(ckpt="/etc/passwd"), "Checkpoint paths are not accepted"),
    ("ckpt-dotdot", gen(ckpt=".."), "Checkpoint paths are not accepted"),
    ("ckpt-dot", gen(ckpt="."), "Checkpoint paths are not accepted"),
    ("ckpt-inner-traversal", gen(ckpt="shapes-32/../emoji-32"), "Checkpoint paths are not accepted"),
    ("ckpt-backslashes", gen(ckpt="..\\..\\windows\\win.ini"), "Checkpoint paths are not accepted"),
]

# Other endpoints: (case id, api name, arguments, regex).
BAD_OTHER = [
    ("compare-100-names", "compare", ["a", 0, 0.7, 1, [f"c{i}" for i in range(100)]], "Unknown checkpoint 'c0'"),
    ("compare-dict", "compare", ["a", 0, 0.7, 1, {"a": "shapes-32"}], "Checkpoints must be a list"),
    ("compare-null", "compare", ["a", 0, 0.7, 1, None], "Checkpoints must be a list"),
    ("compare-1MB", "compare", ["z" * MB, 0, 0.7, 1, ["shapes-32", "emoji-32"]], "characters long"),
    ("interp-1MB", "interpolate", ["both", "z" * MB, "b", 0, 1, 4, 0.7, "shapes-32"], "Prompt A is 1,048,576 characters"),
    ("interp-frames-string", "interpolate", ["both", "a", "b", 0, 1, "12", 0.7, "shapes-32"], "Frames must be a number"),
    ("interp-mode-null", "interpolate", [None, "a", "b", 0, 1, 4, 0.7, "shapes-32"], "Mode must be one of"),
    ("interp-seed-huge", "interpolate", ["both", "a", "b", 0, 10**40, 4, 0.7, "shapes-32"], "Seed B must be between"),
    ("card-absolute", "model_card", ["/etc"], "Checkpoint paths are not accepted"),
]

# Unusual but valid text: must generate, and the score table must show the prompt as sent (stripped).
WORKS = [
    ("control-chars", "a red circle\x00\x07\x1b[31m\x7f\x08 at the top"),
    ("emoji", "🔴 a red circle 🟦 and a blue square 👍🏽"),
    ("hebrew-rtl", "עיגול אדום גדול"),
    ("arabic-rtl", "دائرة حمراء كبيرة"),
    ("bidi-override", "a red \u202ecircle\u202c at the top \u200f"),
    ("zero-width-and-combining", "re\u200dd cir\u0301cle\ufeff"),
    ("cjk", "赤い丸 红色圆圈"),
]


def assert_clear(message: str | None, pattern: str, where: str) -> None:
    assert message, f"{where}: the error came back without a message"
    assert "Traceback" not in message and 'File "' not in message, f"{where}: traceback in {message[:300]!r}"
    assert GENERIC not in message, f"{where}: generic error instead of a clear one: {message[:300]!r}"
    assert len(message) < 400, f"{where}: message too long ({len(message)} chars)"
    assert re.search(pattern, message), f"{where}: {message!r} does not match {pattern!r}"


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def http(app_url: str):
    with httpx.Client(timeout=120) as c:
        yield c


def via_client(client: Client, api: str, args: list) -> str:
    with pytest.raises(AppError) as e:
        client.predict(*args, api_name=f"/{api}")
    return str(e.value)


def via_http(app_url: str, http: httpx.Client, api: str, args: list) -> RawResult:
    r = raw_call(app_url, api, {"data": args}, http=http)
    assert r.status == 200, f"POST answered {r.status}: {r.body[:300]}"
    assert "Traceback" not in r.stream
    assert r.event == "error", f"expected an error event, got {r.event}: {str(r.data)[:300]}"
    assert isinstance(r.data, dict) and r.data.get("title") == "Invalid input", r.data
    return r


@pytest.mark.parametrize("transport", ["client", "http"])
@pytest.mark.parametrize("args,pattern", [c[1:] for c in BAD_GENERATE], ids=[c[0] for c in BAD_GENERATE])
def test_generate_bad_input(transport, args, pattern, client, http, app_url) -> None:
    if transport == "client":
        assert_clear(via_client(client, "generate", args), pattern, transport)
    else:
        assert_clear(via_http(app_url, http, "generate", args).error_message, pattern, transport)


@pytest.mark.parametrize("transport", ["client", "http"])
@pytest.mark.parametrize("api,args,pattern", [c[1:] for c in BAD_OTHER], ids=[c[0] for c in BAD_OTHER])
def test_other_endpoints_bad_input(transport, api, args, pattern, client, http, app_url) -> None:
    if transport == "client":
        assert_clear(via_client(client, api, args), pattern, transport)
    else:
        assert_clear(via_http(app_url, http, api, args).error_message, pattern, transport)


# JSON has no NaN or infinity, so gradio_client (strict JSON) cannot send them; Python's
# JSON parser on the server accepts these tokens, and 1e999 overflows to inf.
NON_FINITE = [
    ("seed-NaN", 1, "NaN", "Seed must be a finite number"),
    ("seed-Infinity", 1, "Infinity", "Seed must be a finite number"),
    ("seed-minus-Infinity", 1, "-Infinity", "Seed must be a finite number"),
    ("seed-1e999", 1, "1e999", "Seed must be a finite number"),
    ("psi-NaN", 2, "NaN", "Truncation ψ must be a finite number"),
    ("psi-Infinity", 2, "Infinity", "Truncation ψ must be a finite number"),
    ("psi-minus-Infinity", 2, "-Infinity", "Truncation ψ must be a finite number"),
    ("n-NaN", 3, "NaN", "Images per prompt must be a finite number"),
    ("n-Infinity", 3, "Infinity", "Images per prompt must be a finite number"),
    ("n-minus-Infinity", 3, "-Infinity", "Images per prompt must be a finite number"),
    ("best-of-NaN", 5, "NaN", "Best of N must be a finite number"),
    ("seed-4300-digits", 1, "9" * 4300, "Seed must be between"),
]


@pytest.mark.parametrize("index,token,pattern", [c[1:] for c in NON_FINITE], ids=[c[0] for c in NON_FINITE])
def test_non_finite_and_giant_numbers_over_raw_http(index, token, pattern, http, app_url) -> None:
    parts = [json.dumps(v) for v in GOOD]
    parts[index] = token
    r = raw_call(app_url, "generate", '{"data": [%s]}' % ", ".join(parts), http=http)
    assert r.status == 200 and r.event == "error", (r.status, r.body[:200], r.data)
    assert_clear(r.error_message, pattern, "http")


MALFORMED = [
    ("not-json", b"{this is not json", 422),
    ("invalid-utf8", b'{"data": ["\xff\xfe", 1, 0.7, 1, "shapes-32", 0]}', 400),
    ("data-not-a-list", {"data": "a red circle"}, 422),
    ("data-null", {"data": None}, 422),
    ("no-data", {}, 422),
    ("session-hash-int", {"data": GOOD, "session_hash": 5}, 422),
    ("int-over-4300-digits", '{"data": ["a", %s, 0.7, 1, "shapes-32", 0]}' % ("9" * 5000), 400),
    ("nested-100k-deep", '{"data": ["a", 1, 0.7, 1, "shapes-32", %s]}' % ("[" * 100_000 + "]" * 100_000), 400),
]


@pytest.mark.parametrize("body,status", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_bodies_are_refused_before_the_queue(body, status, http, app_url) -> None:
    """Bodies the web layer cannot parse get a 4xx with a JSON reason; nothing reaches the model."""
    r = raw_call(app_url, "generate", body, http=http)
    assert r.status == status, (r.status, r.body[:300])
    assert "Traceback" not in r.body and json.loads(r.body)["detail"]


def test_unknown_endpoint_does_not_hurt_the_server(app_url) -> None:
    """Gradio itself answers an unknown api_name with a bare 500 ("Internal Server Error", no
    traceback in the body: `FnIndexInferError` in its log); the app cannot intercept that route.
    What matters here: no traceback leaks and the server keeps serving."""
    r = raw_call(app_url, "no_such_endpoint", {"data": GOOD})  # own connection: a 500 closes it
    assert r.status in (404, 500) and "Traceback" not in r.body and "FnIndexInferError" not in r.body


def test_extra_arguments_are_ignored(http, app_url) -> None:
    r = raw_call(app_url, "generate", {"data": [*GOOD, "extra", 99]}, http=http)
    assert r.event == "complete", r.data


def test_too_few_arguments_get_a_message(http, app_url) -> None:
    r = raw_call(app_url, "generate", {"data": ["a red circle"]}, http=http)
    assert r.event == "error" and "Traceback" not in r.stream
    assert r.error_message and "needed: 6, got: 1" in r.error_message


@pytest.mark.parametrize("api,args", [("generate", gen(prompts="a red \ud800 circle")),
                                      ("interpolate", ["both", "a\udfff", "b", 0, 1, 4, 0.7, "shapes-32"])],
                         ids=["generate", "interpolate"])
def test_lone_surrogate_gets_a_clear_message(api, args, http, app_url) -> None:
    body = json.dumps({"data": args})  # json.dumps writes the surrogate as a \\ud800 escape
    r = raw_call(app_url, api, body, http=http)
    assert r.event == "error"
    assert_clear(r.error_message, "(?i)unicode|surrogate|text", "http")


@pytest.mark.parametrize("transport", ["client", "http"])
@pytest.mark.parametrize("prompt", [c[1] for c in WORKS], ids=[c[0] for c in WORKS])
def test_unusual_text_generates(transport, prompt, client, http, app_url) -> None:
    args = gen(prompts=prompt, n=2)
    if transport == "client":
        _png, table, _notes = client.predict(*args, api_name="/generate")
    else:
        r = raw_call(app_url, "generate", {"data": args}, http=http)
        assert r.event == "complete", f"{r.event}: {str(r.data)[:300]}"
        _png, table, _notes = r.data[:3]  # (raw HTTP also lists the UI's state output, as null)
    assert len(table["data"]) == 2
    assert [row[0] for row in table["data"]] == [prompt.strip()] * 2


LIMITS = [("max-seed", gen(seed=2**31 - 1), 1), ("float-integers", gen(seed=5.0, n=8.0), 8),
          ("psi-0", gen(psi=0), 1), ("psi-1.5", gen(psi=1.5), 1),
          ("8-prompts-best-of-32", gen(prompts="\n".join(["a red circle"] * 8), best=32), 8)]


@pytest.mark.parametrize("args,images", [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
def test_limits_themselves_are_accepted(args, images, client) -> None:
    _png, table, notes = client.predict(*args, api_name="/generate")
    assert len(table["data"]) == images and "shapes-32" in notes


def test_server_still_serves_after_all_of_the_above(client, app_url) -> None:
    _png, table, _notes = client.predict("a small blue square in the center", 11, 0.7, 2, "shapes-32", 0,
                                         api_name="/generate")
    assert [row[1] for row in table["data"]] == [11, 12]
    assert httpx.get(app_url, timeout=30).status_code == 200
