#!/usr/bin/env bash
# Enrichment throughput: `magpie enrich` on a fresh demo warehouse against local fakes of the
# Spotify Web API and MusicBrainz (Python, in their own process, answering with the realdata
# payload shapes), first with the limiters off (items/s and peak RSS of the magpie process,
# by /usr/bin/time -v), then with MusicBrainz's default 1 request/s (the rate measured on the
# fake's own request timestamps).
#
#   scripts/bench-enrich.sh [PLAYS]    (default 60000)
#
# Needs python3 and /usr/bin/time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
BIN="${MAGPIE_BIN:-$CARGO_TARGET_DIR/release/magpie}"
unset MAGPIE_BIN # magpie reads MAGPIE_* variables as config and would reject this one
REAL="${REALDATA_DIR:-$ROOT/../shared/realdata}"
PLAYS="${1:-60000}"
PORT="${FAKE_PORT:-18778}"
WORK="$(mktemp -d)"
trap 'kill $FAKE 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

"$BIN" demo generate --plays "$PLAYS" --seed 42 --end 2026-06-30 --out "$WORK/export" >/dev/null
"$BIN" --data-dir "$WORK/base" import "$WORK/export" >/dev/null 2>&1

python3 - "$REAL" "$PORT" "$WORK/mb-times" <<'PY' &
import json, sys, time, hashlib, http.server, urllib.parse, copy, threading
real, port, times_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
web = real + "/spotify_webapi/spotify-web-api-java"
mb = real + "/musicbrainz/musicbrainzws2"
track_t = json.load(open(web + "/tracks/GetSeveralTracksRequest.json"))["tracks"][0]
artist_t = json.load(open(web + "/artists/GetSeveralArtistsRequest.json"))["artists"][0]
album_t = json.load(open(web + "/albums/GetSeveralAlbumsRequest.json"))["albums"][0]
lookup_t = json.load(open(mb + "/lookup/MbArtistResult.json"))
search_t = json.load(open(mb + "/search/MbArtistResult.json"))["artists"][0]
GENRES = ["rock", "indie folk", "jazz", "techno", "hip hop", "soul", "metal", "ambient"]
COUNTRIES = ["US", "GB", "SE", "DE", "FR", "JP", "BR", "NG"]
lock = threading.Lock()
mb_times = []
def h(s, n=22):
    return hashlib.sha256(s.encode()).hexdigest()[:n]
def mbid(name):
    x = h(name, 32); return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/reset":
            with lock: mb_times.clear()
            return self.reply(200, {})
        self.reply(200, {"access_token": "bench", "token_type": "Bearer", "expires_in": 3600})
    def do_GET(self):
        u = urllib.parse.urlparse(self.path); q = urllib.parse.parse_qs(u.query); p = u.path.split("/")
        if u.path.startswith("/ws/2/"):
            with lock: mb_times.append(time.time())
        if u.path.startswith("/v1/tracks/"):
            t = copy.deepcopy(track_t); t["id"] = p[3]
            n = int(h(p[3], 6), 16)
            t["artists"][0]["id"] = "artist" + h(str(n % 500), 16); t["album"]["id"] = "album" + h(str(n % 2000), 17)
            return self.reply(200, t)
        if u.path.startswith("/v1/artists/"):
            a = copy.deepcopy(artist_t); a["id"] = p[3]; return self.reply(200, a)
        if u.path.startswith("/v1/albums/"):
            a = copy.deepcopy(album_t); a["id"] = p[3]; a["tracks"] = {"items": []}; return self.reply(200, a)
        if u.path == "/ws/2/url":
            return self.reply(404, {"error": "Not Found"})
        if u.path == "/ws/2/artist":
            name = q["query"][0].split('"')[1]
            a = copy.deepcopy(search_t); a.update({"id": mbid(name), "name": name, "score": 100}); a.pop("aliases", None)
            return self.reply(200, {"created": "2026-01-01T00:00:00Z", "count": 1, "offset": 0, "artists": [a]})
        if u.path.startswith("/ws/2/artist/"):
            a = copy.deepcopy(lookup_t); n = int(p[4][:6], 16); a["id"] = p[4]
            a["country"] = COUNTRIES[n % 8]; a["genres"] = [{"name": GENRES[n % 8], "count": 3}]
            return self.reply(200, a)
        self.reply(404, {"error": "no such path"})
    def finish(self):
        super().finish()
        with lock:
            open(times_path, "w").write("\n".join(map(str, mb_times)))
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
FAKE=$!
sleep 0.7
export MAGPIE_SPOTIFY__CLIENT_ID=bench SPOTIFY_CLIENT_SECRET=bench
export MAGPIE_SPOTIFY__API_URL="http://127.0.0.1:$PORT" MAGPIE_SPOTIFY__ACCOUNTS_URL="http://127.0.0.1:$PORT"
export MAGPIE_ENRICHMENT__MUSICBRAINZ_URL="http://127.0.0.1:$PORT" MAGPIE_ENRICHMENT__CONTACT=bench@localhost

echo "== limiters off: every source, $PLAYS-play demo"
cp -r "$WORK/base" "$WORK/off"
MAGPIE_ENRICHMENT__MUSICBRAINZ_REQUESTS_PER_SECOND=0 MAGPIE_ENRICHMENT__SPOTIFY_REQUESTS_PER_SECOND=0 \
  /usr/bin/time -v "$BIN" --data-dir "$WORK/off" enrich 2>"$WORK/time-off" | tail -3
grep -E "Elapsed|Maximum resident|User time|System time" "$WORK/time-off"
"$BIN" --data-dir "$WORK/off" sql "SELECT source, entity, state, count(*) AS n FROM raw.enrichment_queue GROUP BY ALL ORDER BY 1, 2, 3" 2>/dev/null

echo "== MusicBrainz at its default 1 request/s: 20 artists"
cp -r "$WORK/base" "$WORK/on"
python3 -c "import urllib.request; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:$PORT/reset', data=b''))"
"$BIN" --data-dir "$WORK/on" enrich --source musicbrainz --limit 20 2>/dev/null | tail -1
python3 - "$WORK/mb-times" <<'PY'
import sys
t = sorted(float(x) for x in open(sys.argv[1]).read().split() if x)
gaps = [b - a for a, b in zip(t, t[1:])]
print(f"{len(t)} MusicBrainz requests in {t[-1] - t[0]:.1f} s: {(len(t) - 1) / (t[-1] - t[0]):.3f} requests/s, closest two {min(gaps) * 1000:.0f} ms apart")
PY
