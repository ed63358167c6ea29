#!/usr/bin/env python3
"""Drive magpie's ListenBrainz (/1/) and Last.fm (/2.0/) APIs with the real client libraries
liblistenbrainz and pylast (issue 26), as a player or scrobbler would.

    scrobble_clients.py clients --token-json FILE [--base-url URL] [--cross FILE]
    scrobble_clients.py flood   --token-json FILE [--base-url URL] [--batch 1000] [--first B] [--batches N]

FILE is what `magpie listener token create --json` printed. --base-url (http://127.0.0.1:PORT)
replaces the host of both URLs in it: the token is created before `magpie serve` picks its port.

`clients` submits, reads back and provokes errors, then prints ONE JSON object on stdout: what
it submitted and expects stored (`expected`), the names that must never be stored (rejected
requests and now-playing notices), the error answers seen, and `failures` (the checks that did
not hold; the exit code is 1 when there are any). Progress goes to stderr.
`--cross` is a JSON list of {"via": "listenbrainz"|"lastfm", "artist", "track", "album",
"listened_at", "duration_s"}: plays also present in a Spotify export, submitted as well.

`flood` submits import batches of --batch listens (track "flood BBBB IIII"), numbered from
--first, until the server goes away or --batches were sent, printing "sending B" before and
"acked B" after each accepted one (flushed).
"""

import argparse
import hashlib
import json
import sys
import urllib.parse

import httpx2
import liblistenbrainz
import pylast
import requests
from liblistenbrainz import errors as lb_errors

ARTIST = "Magpie Test Artist"
ALBUM = "Magpie Test Album"
# 2024-06-01T12:00:00Z: every submitted listen is at a fixed, distinct time from here on.
T0 = 1717243200
IMPORT_N = 50
IMPORT_STEP = 240
MANY_N = 60  # pylast splits this into 50 + 10 (two track.scrobble requests)
FLOOD_T0 = 1600000000
OK = {"status": "ok"}.__eq__  # what /1/submit-listens answers on success


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class Checks:
    def __init__(self):
        self.failures = []
        self.notes = []

    def check(self, ok, what):
        if ok:
            log(f"ok    {what}")
        else:
            log(f"FAIL  {what}")
            self.failures.append(what)
        return ok

    def attempt(self, what, call, ok=lambda result: True, detail=lambda result: ""):
        """Run a client call; a failed check when it raises or its result is not `ok`."""
        try:
            result = call()
        except Exception as e:  # noqa: BLE001 - any client error is a failed check, reported
            self.check(False, f"{what}: {describe(e)}")
            return None
        self.check(ok(result), f"{what}{detail(result)}")
        return result

    def note(self, what):
        log(f"note  {what}")
        self.notes.append(what)


def describe(e):
    """An exception of either client with what the server said."""
    status = getattr(e, "status_code", None) or getattr(e, "status", None)
    message = getattr(e, "message", None) or getattr(e, "details", None) or str(e)
    return f"{type(e).__name__} {status or ''} {message!r}"


def load_endpoints(args):
    with open(args.token_json, encoding="utf-8") as f:
        tok = json.load(f)
    lb_url = tok["listenbrainz_url"].rstrip("/")
    lfm = urllib.parse.urlsplit(tok["lastfm_url"])
    lfm_path = lfm.path or "/2.0/"
    if args.base_url:
        base = args.base_url.rstrip("/")
        lb_url = base
        lfm_root = base
    else:
        lfm_root = f"{lfm.scheme}://{lfm.netloc}"
    tok["lb_url"] = lb_url
    tok["lfm_root"] = lfm_root
    tok["lfm_host"] = urllib.parse.urlsplit(lfm_root).netloc
    tok["lfm_path"] = lfm_path
    tok["lfm_endpoint"] = lfm_root + lfm_path
    return tok


# ---------------------------------------------------------------------------------------------
# ListenBrainz


def lb_client(ep, token, check=True):
    client = liblistenbrainz.ListenBrainz(api_base_url=ep["lb_url"])
    client.set_auth_token(token, check_validity=check)
    return client


def raw_lb_post(ep, body, token=None, headers=None):
    """POST /1/submit-listens with a body as given (bytes or str), no retries."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Token {token}"
    if isinstance(body, str):
        body = body.encode("utf-8")
    return requests.post(f"{ep['lb_url']}/1/submit-listens", data=body, headers=h, timeout=30)


def lb_error_shape(resp, status):
    """Is this ListenBrainz's error answer: HTTP `status`, {"code": status, "error": "..."}?"""
    try:
        body = resp.json()
    except ValueError:
        return False, f"HTTP {resp.status_code}, not JSON: {resp.text[:200]!r}"
    ok = (
        resp.status_code == status
        and isinstance(body, dict)
        and body.get("code") == status
        and isinstance(body.get("error"), str)
        and body["error"].strip() != ""
    )
    return ok, f"HTTP {resp.status_code} {json.dumps(body)[:300]}"


def listen_json(track, ts=None, artist=ARTIST, album=ALBUM, extra=None):
    meta = {"artist_name": artist, "track_name": track, "release_name": album}
    if extra is not None:
        meta["additional_info"] = extra
    listen = {"track_metadata": meta}
    if ts is not None:
        listen["listened_at"] = ts
    return listen


def run_listenbrainz(ep, c, out, cross):
    name, token = ep["listener"], ep["token"]
    expected = out["expected"]

    # validate-token, through the client (it reads `valid`) and raw (the whole answer).
    try:
        client = lb_client(ep, token)
        c.check(True, "liblistenbrainz set_auth_token accepts the token (validate-token valid)")
    except Exception as e:  # noqa: BLE001 - report any client error as a failed check
        c.check(False, f"liblistenbrainz set_auth_token: {type(e).__name__} {e!r}")
        client = lb_client(ep, token, check=False)
    r = requests.get(
        f"{ep['lb_url']}/1/validate-token", headers={"Authorization": f"Token {token}"}, timeout=30
    )
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
    c.check(
        r.status_code == 200
        and isinstance(body, dict)
        and body.get("valid") is True
        and body.get("user_name") == name
        and body.get("code") == 200,
        f"validate-token answers 200 {{code: 200, valid: true, user_name: {name!r}}}: "
        f"HTTP {r.status_code} {r.text[:200]}",
    )
    r = requests.get(
        f"{ep['lb_url']}/1/validate-token",
        headers={"Authorization": "Token not-a-magpie-token"},
        timeout=30,
    )
    try:
        body = r.json()
    except ValueError:
        body = None
    ok = (r.status_code == 200 and isinstance(body, dict) and body.get("valid") is False) or (
        r.status_code == 401 and isinstance(body, dict) and body.get("code") == 401
    )
    c.check(ok, f"validate-token with a bad token: valid false (or 401): HTTP {r.status_code} {r.text[:200]}")
    if r.status_code == 401:
        c.note("validate-token answers 401 for a bad token; api.listenbrainz.org answers 200 valid:false")
    try:
        lb_client(ep, "not-a-magpie-token")
        c.check(False, "liblistenbrainz set_auth_token refuses a bad token")
    except lb_errors.InvalidAuthTokenException:
        c.check(True, "liblistenbrainz set_auth_token refuses a bad token (InvalidAuthTokenException)")
    except lb_errors.ListenBrainzAPIException as e:
        c.check(e.status_code == 401, f"liblistenbrainz set_auth_token with a bad token: HTTP {e.status_code}")

    # A single listen carrying every documented additional_info field.
    single_info = {
        "duration_ms": 215000,
        "submission_client": "scrobble_clients.py",
        "submission_client_version": "1",
        "media_player": "pytest-player",
        "music_service": "spotify.com",
        "origin_url": "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC",
    }
    single = liblistenbrainz.Listen(
        track_name="LB Single",
        artist_name=ARTIST,
        release_name=ALBUM,
        listened_at=T0,
        recording_mbid="5d4ce5a4-1c06-4b5d-8d31-7a9b3b0a7a11",
        artist_mbids=["b10bbbfc-cf9e-42e0-be17-e2c3e1d2600d"],
        release_mbid="0c3a1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4",
        tracknumber=3,
        spotify_id="https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC",
        isrc="GBAAA0000001",
        additional_info=dict(single_info),
    )
    c.attempt("submit_single_listen answers {status: ok}", lambda: client.submit_single_listen(single),
              OK, lambda r: f": {r}")
    expected.append(
        {"source_kind": "listenbrainz_api", "artist": ARTIST, "track": "LB Single", "album": ALBUM,
         "listened_at": T0, "recording_mbid": "5d4ce5a4-1c06-4b5d-8d31-7a9b3b0a7a11",
         "artist_mbid": "b10bbbfc-cf9e-42e0-be17-e2c3e1d2600d",
         "release_mbid": "0c3a1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4",
         "spotify_track_id": "4uLU6hMCjMI75M1A2tKUQC"}
    )

    # An import batch of IMPORT_N listens.
    batch = []
    for i in range(IMPORT_N):
        ts = T0 + 1000 + i * IMPORT_STEP
        batch.append(
            liblistenbrainz.Listen(
                track_name=f"LB Import {i:02d}", artist_name=ARTIST, release_name=ALBUM,
                listened_at=ts, additional_info={"duration_ms": 200000 + i},
            )
        )
        expected.append({"source_kind": "listenbrainz_api", "artist": ARTIST,
                         "track": f"LB Import {i:02d}", "album": ALBUM, "listened_at": ts})
    c.attempt(f"submit_multiple_listens ({IMPORT_N}) answers {{status: ok}}",
              lambda: client.submit_multiple_listens(batch), OK, lambda r: f": {r}")

    # Clients retry: the same single and the same batch again are accepted and add nothing.
    c.attempt("resubmitting the single listen is accepted", lambda: client.submit_single_listen(single), OK)
    c.attempt("resubmitting the import batch is accepted", lambda: client.submit_multiple_listens(batch), OK)
    out["retried"] += 1 + IMPORT_N

    # Plays also present in the Spotify export (cross-source dedupe).
    lb_cross = [x for x in cross if x["via"] == "listenbrainz"]
    if lb_cross:
        listens = [
            liblistenbrainz.Listen(
                track_name=x["track"], artist_name=x["artist"], release_name=x.get("album"),
                listened_at=x["listened_at"], additional_info={"duration_ms": x["duration_s"] * 1000},
            )
            for x in lb_cross
        ]
        c.attempt(f"submit_multiple_listens of {len(listens)} plays also in the Spotify export",
                  lambda: client.submit_multiple_listens(listens), OK)
        for x in lb_cross:
            expected.append({"source_kind": "listenbrainz_api", "artist": x["artist"], "track": x["track"],
                             "album": x.get("album"), "listened_at": x["listened_at"], "cross": True})

    # playing_now: not a play; readable at /1/user/NAME/playing-now.
    now = liblistenbrainz.Listen(track_name="LB Now Playing", artist_name=ARTIST, release_name=ALBUM,
                                 additional_info={"duration_ms": 600000})
    out["never_stored"].append("LB Now Playing")
    c.attempt("submit_playing_now answers {status: ok}", lambda: client.submit_playing_now(now), OK,
              lambda r: f": {r}")
    c.attempt("get_playing_now shows the playing_now listen", lambda: client.get_playing_now(name),
              lambda p: p is not None and p.track_name == "LB Now Playing" and p.artist_name == ARTIST,
              lambda p: f": {p and (p.track_name, p.artist_name, p.listened_at)}")
    r = requests.get(f"{ep['lb_url']}/1/user/{name}/playing-now", timeout=30)
    try:
        body = r.json()
        payload = body["payload"]
        c.check(
            r.status_code == 200 and payload.get("count") == 1 and payload.get("playing_now") is True
            and payload.get("user_id") == name and "listened_at" not in payload["listens"][0],
            f"playing-now payload has count 1, playing_now true, user_id, no listened_at: {r.text[:300]}",
        )
    except (ValueError, KeyError, IndexError, TypeError):
        c.check(False, f"playing-now answer is LB's shape: HTTP {r.status_code} {r.text[:300]}")
    r = requests.get(f"{ep['lb_url']}/1/user/no-such-listener-zz/playing-now", timeout=30)
    ok, seen = lb_error_shape(r, 404)
    c.check(ok, f"playing-now of an unknown user: 404 {{code, error}}: {seen}")

    # Read back: max_ts is exclusive, newest first; the single and the batch are all there
    # (nothing else of this listener is that old).
    last_import = T0 + 1000 + (IMPORT_N - 1) * IMPORT_STEP
    try:
        got = client.get_listens(name, max_ts=last_import + 1, count=100)
        seen = [(x.listened_at, x.track_name) for x in got]
        want = sorted([(T0, "LB Single")] + [(T0 + 1000 + i * IMPORT_STEP, f"LB Import {i:02d}")
                                              for i in range(IMPORT_N)], reverse=True)
        c.check(seen == want, f"get_listens(max_ts, count=100) returns the {len(want)} submitted listens "
                              f"newest first, once each: got {len(seen)}, first {seen[:3]}")
        first = next((x for x in got if x.track_name == "LB Single"), None)
        c.check(
            first is not None and first.release_name == ALBUM and first.artist_name == ARTIST
            and first.recording_mbid == "5d4ce5a4-1c06-4b5d-8d31-7a9b3b0a7a11",
            f"the single listen reads back with release_name and recording_mbid: "
            f"{first and (first.release_name, first.recording_mbid, first.additional_info)}",
        )
        got = client.get_listens(name, max_ts=last_import + 1, count=10)
        c.check([x.listened_at for x in got] == [t for t, _ in want[:10]],
                f"count=10 returns the 10 newest before max_ts: {[x.listened_at for x in got]}")
        got = client.get_listens(name, max_ts=last_import)
        c.check(last_import not in [x.listened_at for x in got] and len(got) == 25,
                f"max_ts is exclusive and count defaults to 25: {len(got)} listens")
        got = client.get_listens(name, min_ts=last_import - IMPORT_STEP, count=1)
        c.check([x.listened_at for x in got] == [last_import],
                f"min_ts is exclusive and count=1 gives the first listen after it: {[x.listened_at for x in got]}")
    except Exception as e:  # noqa: BLE001
        c.check(False, f"get_listens: {type(e).__name__} {getattr(e, 'status_code', '')} "
                       f"{getattr(e, 'message', '')}")
    r = requests.get(f"{ep['lb_url']}/1/user/{name}/listens", params={"max_ts": last_import + 1, "count": 2},
                     timeout=30)
    try:
        payload = r.json()["payload"]
        item = payload["listens"][0]
        c.check(
            payload.get("count") == 2 and payload.get("user_id") == name
            and isinstance(item.get("listened_at"), int) and item.get("user_name") == name
            and item["track_metadata"].get("track_name") == f"LB Import {IMPORT_N - 1:02d}",
            f"listens payload: count, user_id, listens[].listened_at/user_name/track_metadata: {r.text[:400]}",
        )
    except (ValueError, KeyError, IndexError, TypeError):
        c.check(False, f"listens answer is LB's shape: HTTP {r.status_code} {r.text[:300]}")

    run_listenbrainz_errors(ep, c, out)


def run_listenbrainz_errors(ep, c, out):
    token = ep["token"]
    errs = out["errors_seen"]

    def rejected(name):
        out["never_stored"].append(name)
        return name

    # A bad token through the client, and the answer's shape.
    bad = lb_client(ep, "not-a-magpie-token", check=False)
    try:
        bad.submit_single_listen(liblistenbrainz.Listen(rejected("REJECT bad token"), ARTIST, listened_at=T0 + 7))
        c.check(False, "a bad token is refused")
    except lb_errors.ListenBrainzAPIException as e:
        c.check(e.status_code == 401 and bool(e.message),
                f"liblistenbrainz with a bad token: ListenBrainzAPIException 401 with a message: "
                f"{e.status_code} {e.message!r}")
    except Exception as e:  # noqa: BLE001
        c.check(False, f"bad token: {type(e).__name__} {e!r}")

    partial = [listen_json(rejected(f"REJECT partial {i}"), T0 + 30000 + i) for i in range(10)]
    del partial[6]["track_metadata"]["artist_name"]
    one = lambda track, ts=T0 + 11: json.dumps(  # noqa: E731
        {"listen_type": "single", "payload": [listen_json(rejected(track), ts)]})
    cases = [
        ("bad token", 401, one("REJECT raw bad token"), "not-a-magpie-token", {}),
        ("no Authorization header", 401, one("REJECT no header"), None, {}),
        ("malformed JSON", 400, '{"listen_type": "single", "payload": [', token, {}),
        ("not JSON at all", 400, "listened_at=1&track=x", token, {}),
        ("a JSON array", 400, "[]", token, {}),
        ("no payload key", 400, json.dumps({"listen_type": "single"}), token, {}),
        ("empty payload", 400, json.dumps({"listen_type": "import", "payload": []}), token, {}),
        ("unknown listen_type", 400, json.dumps(
            {"listen_type": "bulk", "payload": [listen_json(rejected("REJECT bulk"), T0 + 12)]}), token, {}),
        ("two listens for single", 400, json.dumps(
            {"listen_type": "single", "payload": [listen_json(rejected("REJECT two a"), T0 + 13),
                                                  listen_json(rejected("REJECT two b"), T0 + 14)]}), token, {}),
        ("single without listened_at", 400, json.dumps(
            {"listen_type": "single", "payload": [listen_json(rejected("REJECT no ts"))]}), token, {}),
        ("playing_now with listened_at", 400, json.dumps(
            {"listen_type": "playing_now", "payload": [listen_json(rejected("REJECT now ts"), T0 + 15)]}),
         token, {}),
        ("listened_at before 2002-10-01", 400, one("REJECT too old", 1000), token, {}),
        ("listened_at a string", 400, one("REJECT ts string", "yesterday"), token, {}),
        ("no track_name", 400, json.dumps(
            {"listen_type": "single", "payload": [{"listened_at": T0 + 16,
                                                   "track_metadata": {"artist_name": "REJECT artist only"}}]}),
         token, {}),
        ("empty artist_name", 400, json.dumps(
            {"listen_type": "single", "payload": [listen_json(rejected("REJECT empty artist"), T0 + 17,
                                                              artist="")]}), token, {}),
        ("a listen over 10240 bytes", 400, json.dumps(
            {"listen_type": "single", "payload": [listen_json(rejected("REJECT huge"), T0 + 18,
                                                              extra={"comment": "x" * 12000})]}), token, {}),
        ("1001 listens in one import", 400, json.dumps(
            {"listen_type": "import",
             "payload": [listen_json(f"REJECT 1001 {i:04d}", T0 + 20000 + i) for i in range(1001)]}),
         token, {}),
        # All or nothing: one bad listen (the 7th has no artist_name) rejects the other nine too.
        ("an import with one invalid listen", 400, json.dumps(
            {"listen_type": "import", "payload": partial}), token, {}),
        # With a JSON content type too (the client sends none).
        ("malformed JSON with Content-Type", 400, "{", token, {"Content-Type": "application/json"}),
    ]
    for what, status, body, tok, headers in cases:
        try:
            r = raw_lb_post(ep, body, tok, headers)
        except requests.RequestException as e:
            c.check(False, f"{what}: request failed {e!r}")
            continue
        ok, seen = lb_error_shape(r, status)
        errs.append({"api": "listenbrainz", "case": what, "seen": seen})
        c.check(ok, f"{what}: {status} {{code: {status}, error}}: {seen}")

    # The same through liblistenbrainz: its exception carries the status and the message.
    client = lb_client(ep, token, check=False)
    try:
        client.submit_single_listen(liblistenbrainz.Listen(rejected("REJECT lib too old"), ARTIST, listened_at=5))
        c.check(False, "liblistenbrainz: a listen from 1970 is refused")
    except lb_errors.ListenBrainzAPIException as e:
        c.check(e.status_code == 400 and bool(e.message),
                f"liblistenbrainz: a listen from 1970 → 400 with a message: {e.status_code} {e.message!r}")
    # An oversized whole request (well beyond 1000 x 10240 bytes) is refused, not stored.
    huge = json.dumps({"listen_type": "import",
                       "payload": [listen_json(rejected("REJECT oversized"), T0 + 40000,
                                               extra={"comment": "y" * 11_000_000})]})
    try:
        r = raw_lb_post(ep, huge, token)
        ok = r.status_code in (400, 413)
        try:
            body = r.json()
            ok = ok and body.get("code") == r.status_code and isinstance(body.get("error"), str)
        except ValueError:
            ok = False
        errs.append({"api": "listenbrainz", "case": "11 MB request", "seen": f"HTTP {r.status_code} {r.text[:200]}"})
        c.check(ok, f"an 11 MB request: 400/413 {{code, error}}: HTTP {r.status_code} {r.text[:200]}")
    except requests.RequestException as e:
        # Closing the connection on an over-limit body is acceptable too; nothing is stored.
        c.note(f"an 11 MB request: the connection was closed ({type(e).__name__})")


# ---------------------------------------------------------------------------------------------
# Last.fm


class DowngradeTransport(httpx2.HTTPTransport):
    """pylast always builds https://HOST URLs; send them over plain http to the test server."""

    def handle_request(self, request):
        request.url = request.url.copy_with(scheme="http")
        return super().handle_request(request)


def lfm_network(ep, api_key=None, api_secret=None, session_key="", username=None, password=None):
    """A pylast network on magpie's /2.0/ (the session key is fetched here when username and
    password are given, as pylast does)."""
    return pylast._Network(  # noqa: SLF001 - the generic network; LibreFM/LastFM fix the host
        name="magpie",
        homepage=ep["lfm_root"],
        ws_server=(ep["lfm_host"], ep["lfm_path"]),
        api_key=ep["lastfm_api_key"] if api_key is None else api_key,
        api_secret=ep["lastfm_api_secret"] if api_secret is None else api_secret,
        session_key=session_key,
        username=username or "",
        password_hash=pylast.md5(password) if password is not None else "",
        domain_names={},
        urls={},
        proxy={"https://": DowngradeTransport()},
    )


def lfm_sign(params, secret):
    text = "".join(f"{k}{params[k]}" for k in sorted(params) if k not in ("format", "callback", "api_sig"))
    return hashlib.md5((text + secret).encode("utf-8")).hexdigest()


def raw_lfm(ep, params, secret=None, sign=True):
    p = dict(params)
    if sign:
        p["api_sig"] = lfm_sign(p, ep["lastfm_api_secret"] if secret is None else secret)
    return requests.post(ep["lfm_endpoint"], data=p, timeout=30)


def ws_code(e):
    return str(getattr(e, "status", ""))


def run_lastfm(ep, c, out, cross):
    name, token = ep["listener"], ep["token"]
    key = ep["lastfm_api_key"]
    expected = out["expected"]
    errs = out["errors_seen"]

    def rejected(track):
        out["never_stored"].append(track)
        return track

    # auth.getMobileSession: username = listener, password = the token.
    # pylast sends authToken = md5(username + md5(password)), never the password itself.
    net = None
    try:
        net = lfm_network(ep, username=name, password=token)
        c.check(bool(net.session_key), f"pylast auth.getMobileSession gives a session key: {net.session_key!r}")
    except Exception as e:  # noqa: BLE001
        c.check(False, f"pylast auth.getMobileSession (authToken=md5(username + md5(token))): "
                       f"{type(e).__name__} {ws_code(e)} {e}")
    if net is None or not net.session_key:
        # Go on with a session from Last.fm's documented form (password=) so the rest still runs.
        r = raw_lfm(ep, {"method": "auth.getMobileSession", "username": name, "password": token,
                         "api_key": key, "format": "json"})
        try:
            net = lfm_network(ep, session_key=r.json()["session"]["key"])
            c.note("pylast's own mobile session failed; continuing with a password= session")
        except (ValueError, KeyError, TypeError):
            c.check(False, f"no session at all: auth.getMobileSession password=: HTTP {r.status_code} {r.text[:200]}")
            return
    sk = net.session_key

    # The same in JSON, signed by hand (format is not signed).
    r = raw_lfm(ep, {"method": "auth.getMobileSession", "username": name, "password": token,
                     "api_key": key, "format": "json"})
    try:
        body = r.json()
        c.check(r.status_code == 200 and body["session"]["name"] == name and body["session"]["key"],
                f"auth.getMobileSession (password=, format=json): {{session: {{name, key}}}}: {r.text[:200]}")
    except (ValueError, KeyError, TypeError):
        c.check(False, f"auth.getMobileSession format=json: HTTP {r.status_code} {r.text[:200]}")

    # One scrobble, a batch of MANY_N (pylast sends 50 then 10), now playing.
    one = {"artist": ARTIST, "title": "LFM Single", "timestamp": T0 + 100000, "album": ALBUM,
           "duration": 187, "track_number": 2, "mbid": "9f1d8a7c-6b5e-4d3c-8b2a-1f0e9d8c7b6a"}
    c.attempt("pylast scrobble (one track)", lambda: net.scrobble(**one))
    expected.append({"source_kind": "lastfm_api", "artist": ARTIST, "track": "LFM Single", "album": ALBUM,
                     "listened_at": T0 + 100000, "recording_mbid": one["mbid"]})
    many = []
    for i in range(MANY_N):
        ts = T0 + 110000 + i * 240
        many.append({"artist": ARTIST, "title": f"LFM Batch {i:02d}", "timestamp": ts, "album": ALBUM,
                     "duration": 200})
        expected.append({"source_kind": "lastfm_api", "artist": ARTIST, "track": f"LFM Batch {i:02d}",
                         "album": ALBUM, "listened_at": ts})
    c.attempt(f"pylast scrobble_many ({MANY_N} tracks: 50 + {MANY_N - 50})", lambda: net.scrobble_many(many))
    # Retries add nothing.
    c.attempt("pylast: the same scrobble again is accepted", lambda: net.scrobble(**one))
    c.attempt("pylast: the same 50 scrobbles again are accepted", lambda: net.scrobble_many(many[:50]))
    out["retried"] += 51

    lfm_cross = [x for x in cross if x["via"] == "lastfm"]
    if lfm_cross:
        c.attempt(f"pylast scrobble_many of {len(lfm_cross)} plays also in the Spotify export",
                  lambda: net.scrobble_many([{"artist": x["artist"], "title": x["track"], "album": x.get("album"),
                                              "timestamp": x["listened_at"], "duration": x["duration_s"]}
                                             for x in lfm_cross]))
        for x in lfm_cross:
            expected.append({"source_kind": "lastfm_api", "artist": x["artist"], "track": x["track"],
                             "album": x.get("album"), "listened_at": x["listened_at"], "cross": True})

    # A scrobble answered in JSON (signed by hand).
    params = {"method": "track.scrobble", "api_key": key, "sk": sk, "artist[0]": ARTIST,
              "track[0]": "LFM Json", "timestamp[0]": str(T0 + 150000), "album[0]": ALBUM,
              "duration[0]": "222", "format": "json"}
    r = raw_lfm(ep, params)
    try:
        body = r.json()
        attr = body["scrobbles"]["@attr"]
        c.check(r.status_code == 200 and int(attr["accepted"]) == 1 and int(attr["ignored"]) == 0,
                f"track.scrobble format=json: scrobbles.@attr accepted 1 ignored 0: {r.text[:300]}")
    except (ValueError, KeyError, TypeError):
        c.check(False, f"track.scrobble format=json: HTTP {r.status_code} {r.text[:300]}")
    expected.append({"source_kind": "lastfm_api", "artist": ARTIST, "track": "LFM Json", "album": ALBUM,
                     "listened_at": T0 + 150000})
    # And in XML, read in full.
    params = {"method": "track.scrobble", "api_key": key, "sk": sk, "artist[0]": ARTIST,
              "track[0]": "LFM Xml", "timestamp[0]": str(T0 + 150300)}
    r = raw_lfm(ep, params)
    c.check(r.status_code == 200 and 'status="ok"' in r.text and 'accepted="1"' in r.text,
            f"track.scrobble (XML): <lfm status=\"ok\"><scrobbles accepted=\"1\" ...>: {r.text[:300]}")
    expected.append({"source_kind": "lastfm_api", "artist": ARTIST, "track": "LFM Xml", "album": None,
                     "listened_at": T0 + 150300})

    out["never_stored"].append("LFM Now Playing")
    c.attempt("pylast update_now_playing",
              lambda: net.update_now_playing(ARTIST, "LFM Now Playing", album=ALBUM, duration=600))
    c.attempt("after track.updateNowPlaying, /1/user/NAME/playing-now shows it",
              lambda: lb_client(ep, token, check=False).get_playing_now(name),
              lambda p: p is not None and p.track_name == "LFM Now Playing",
              lambda p: f": {p and p.track_name}")

    # Errors: each one through pylast, with the code Last.fm gives.
    def expect_ws(what, code, call):
        try:
            call()
            c.check(False, f"{what}: error {code} expected, the call succeeded")
            errs.append({"api": "lastfm", "case": what, "seen": "success"})
        except pylast.WSError as e:
            errs.append({"api": "lastfm", "case": what, "seen": f"{ws_code(e)} {e.details}"})
            c.check(ws_code(e) == str(code) and bool(e.details),
                    f"{what}: error {code} with a message: got {ws_code(e)} {e.details!r}")
        except Exception as e:  # noqa: BLE001
            errs.append({"api": "lastfm", "case": what, "seen": repr(e)})
            c.check(False, f"{what}: error {code} expected, got {type(e).__name__} {e}")

    expect_ws("getMobileSession with a wrong password", 4,
              lambda: lfm_network(ep, username=name, password="not-the-token"))
    expect_ws("getMobileSession of an unknown user", 4,
              lambda: lfm_network(ep, username="no-such-listener-zz", password=token))
    expect_ws("getMobileSession with an unknown api_key", 10,
              lambda: lfm_network(ep, api_key="0" * 32, username=name, password=token))
    expect_ws("getMobileSession signed with a wrong secret", 13,
              lambda: lfm_network(ep, api_secret="f" * 32, username=name, password=token))
    expect_ws("track.scrobble signed with a wrong secret", 13,
              lambda: lfm_network(ep, api_secret="f" * 32, session_key=sk).scrobble(
                  ARTIST, rejected("REJECT bad sig"), T0 + 160000))
    expect_ws("track.scrobble with an unknown session key", 9,
              lambda: lfm_network(ep, session_key="0123456789abcdef0123456789abcdef").scrobble(
                  ARTIST, rejected("REJECT bad sk"), T0 + 160100))
    expect_ws("track.updateNowPlaying with an unknown session key", 9,
              lambda: lfm_network(ep, session_key="0123456789abcdef0123456789abcdef").update_now_playing(
                  ARTIST, rejected("REJECT now bad sk")))

    # Invalid parameters, signed correctly by hand.
    def raw_case(what, code, params, fmt="xml"):
        p = dict(params)
        if fmt == "json":
            p["format"] = "json"
        r = raw_lfm(ep, p)
        seen = f"HTTP {r.status_code} {r.text[:300]}"
        errs.append({"api": "lastfm", "case": what, "seen": seen})
        if r.status_code >= 500:
            c.check(False, f"{what}: error {code}, not a server error: {seen}")
            return
        if fmt == "json":
            try:
                body = r.json()
                ok = body.get("error") == code and isinstance(body.get("message"), str)
            except ValueError:
                ok = False
            c.check(ok, f"{what}: {{\"error\": {code}, \"message\": ...}}: {seen}")
        else:
            c.check('status="failed"' in r.text and f'code="{code}"' in r.text,
                    f"{what}: <lfm status=\"failed\"><error code=\"{code}\">: {seen}")

    base = {"method": "track.scrobble", "api_key": key, "sk": sk}
    raw_case("track.scrobble without timestamp[0]", 6,
             {**base, "artist[0]": ARTIST, "track[0]": rejected("REJECT no timestamp")})
    # Last.fm refuses a whole request with error 6, or ignores single scrobbles in an ok answer
    # (accepted 0, ignored 1, an ignoredMessage): either way nothing is stored.
    r = raw_lfm(ep, {**base, "artist[0]": ARTIST, "timestamp[0]": str(T0 + 160200)})
    errs.append({"api": "lastfm", "case": "track.scrobble without track[0]", "seen": r.text[:300]})
    c.check(r.status_code < 500 and (('status="failed"' in r.text and 'code="6"' in r.text)
                                     or ('status="ok"' in r.text and 'accepted="0"' in r.text
                                         and 'ignored="1"' in r.text)),
            f"track.scrobble without track[0]: error 6, or accepted 0 ignored 1: HTTP {r.status_code} {r.text[:300]}")
    raw_case("track.scrobble with a non-numeric timestamp", 6,
             {**base, "artist[0]": ARTIST, "track[0]": rejected("REJECT ts text"), "timestamp[0]": "noon"})
    too_many = dict(base)
    for i in range(51):
        too_many[f"artist[{i}]"] = ARTIST
        too_many[f"track[{i}]"] = rejected(f"REJECT 51 {i:02d}")
        too_many[f"timestamp[{i}]"] = str(T0 + 170000 + i * 240)
    raw_case("track.scrobble with 51 tracks", 6, too_many)
    raw_case("track.scrobble without timestamp[0], format=json", 6,
             {**base, "artist[0]": ARTIST, "track[0]": rejected("REJECT no timestamp json")}, fmt="json")
    r = raw_lfm(ep, {**base, "artist[0]": ARTIST, "track[0]": rejected("REJECT sig json"),
                     "timestamp[0]": str(T0 + 160300), "format": "json"}, secret="f" * 32)
    try:
        body = r.json()
        c.check(body.get("error") == 13 and isinstance(body.get("message"), str),
                f"a bad signature in JSON: {{\"error\": 13, \"message\": ...}}: HTTP {r.status_code} {r.text[:200]}")
    except ValueError:
        c.check(False, f"a bad signature in JSON: HTTP {r.status_code} {r.text[:200]}")
    r = raw_lfm(ep, {**base, "artist[0]": ARTIST, "track[0]": rejected("REJECT unsigned"),
                     "timestamp[0]": str(T0 + 160400)}, sign=False)
    c.check('status="failed"' in r.text and ('code="13"' in r.text or 'code="6"' in r.text),
            f"an unsigned track.scrobble: error 13 (or 6): HTTP {r.status_code} {r.text[:200]}")
    r = raw_lfm(ep, {"method": "track.nosuch", "api_key": key, "sk": sk})
    c.check('status="failed"' in r.text and 'code="3"' in r.text,
            f"an unknown method: error 3: HTTP {r.status_code} {r.text[:200]}")

    # Desktop flow without approval: a token, but no session for it yet (Last.fm: 14).
    try:
        gen = pylast.SessionKeyGenerator(lfm_network(ep))
        url = gen.get_web_auth_url()
        req_token = gen.web_auth_tokens[url]
        c.check(bool(req_token), f"auth.getToken gives a token: {req_token!r}")
        expect_ws("auth.getSession for a token nobody approved", 14,
                  lambda: gen.get_web_auth_session_key(url))
    except Exception as e:  # noqa: BLE001
        c.check(False, f"auth.getToken: {type(e).__name__} {ws_code(e)} {e}")


def cmd_clients(args):
    ep = load_endpoints(args)
    cross = []
    if args.cross:
        with open(args.cross, encoding="utf-8") as f:
            cross = json.load(f)
    c = Checks()
    out = {"listener": ep["listener"], "expected": [], "never_stored": [], "retried": 0,
           "errors_seen": [], "failures": c.failures, "notes": c.notes}
    for part in (run_listenbrainz, run_lastfm):
        try:
            part(ep, c, out, cross)
        except Exception as e:  # noqa: BLE001 - one broken part must not hide the other's results
            c.check(False, f"{part.__name__} stopped: {type(e).__name__} {e!r}")
    out["expected_count"] = len(out["expected"])
    print(json.dumps(out, indent=1))
    return 1 if c.failures else 0


def cmd_flood(args):
    ep = load_endpoints(args)
    client = lb_client(ep, ep["token"], check=False)
    b = args.first
    while args.batches is None or b < args.first + args.batches:
        listens = [
            liblistenbrainz.Listen(track_name=f"flood {b:04d} {i:04d}", artist_name="Flood Artist",
                                   release_name="Flood", listened_at=FLOOD_T0 + b * args.batch + i,
                                   additional_info={"duration_ms": 180000})
            for i in range(args.batch)
        ]
        print(f"sending {b}", flush=True)
        try:
            client.submit_multiple_listens(listens)
        except Exception as e:  # noqa: BLE001 - the server is expected to vanish mid-flood
            print(f"stopped {b}: {type(e).__name__}", flush=True)
            return 0
        print(f"acked {b}", flush=True)
        b += 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("clients", "flood"):
        p = sub.add_parser(name)
        p.add_argument("--token-json", required=True)
        p.add_argument("--base-url")
        if name == "clients":
            p.add_argument("--cross")
        else:
            p.add_argument("--batch", type=int, default=1000)
            p.add_argument("--first", type=int, default=0)
            p.add_argument("--batches", type=int)
    args = parser.parse_args()
    return cmd_clients(args) if args.command == "clients" else cmd_flood(args)


if __name__ == "__main__":
    sys.exit(main())
