#!/usr/bin/env bash
# Spotify polling cost: CPU time of one `magpie spotify poll` (a full page of 50 new plays, then
# an empty poll), and the RSS of `magpie serve` idling with polling on, against a local fake of
# the Web API that serves the real recently-played payload shape from ../shared/realdata.
#
#   scripts/bench-poll.sh [DATA_DIR]    (default: a temporary folder)
#
# Needs python3 and /usr/bin/time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${MAGPIE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/magpie}"
unset MAGPIE_BIN # magpie reads MAGPIE_* variables as config and would reject this one
PAYLOAD="${REALDATA_DIR:-$ROOT/../shared/realdata}/spotify_webapi/spotify-web-api-java/player/GetCurrentUsersRecentlyPlayedTracksRequest.json"
DATA="${1:-$(mktemp -d)}"
PORT="${FAKE_PORT:-18777}"
mkdir -p "$DATA/secrets"
chmod 700 "$DATA/secrets"
python3 - "$DATA/secrets/spotify-tokens.json" <<'PY'
import json, os, sys, datetime
now = datetime.datetime.now(datetime.timezone.utc)
body = {"listeners": {"default": {"access_token": "bench-access", "refresh_token": "bench-refresh",
        "expires_at": (now + datetime.timedelta(days=1)).isoformat(), "authorized_at": now.isoformat()}}}
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, json.dumps(body).encode())
PY
python3 - "$PAYLOAD" "$PORT" <<'PY' &
import json, sys, time, http.server, urllib.parse, copy
template = json.load(open(sys.argv[1]))["items"][0]
start = int(time.time() * 1000)
plays = [start - i * 240_000 for i in range(50)]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        after = int(q.get("after", ["0"])[0])
        items = []
        for t in sorted((p for p in plays if p > after), reverse=True):
            it = copy.deepcopy(template)
            it["played_at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t / 1000)) + ".%03dZ" % (t % 1000)
            it["track"]["uri"] = "spotify:track:bench%d" % (t // 1000 % 97)
            it["track"]["name"] = "Bench Song %d" % (t // 1000 % 97)
            items.append(it)
        cursors = {"after": str(max(p for p in plays if p > after)), "before": "0"} if items else None
        body = json.dumps({"items": items, "next": None, "cursors": cursors, "limit": 50}).encode()
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), H).serve_forever()
PY
FAKE=$!
trap 'kill $FAKE 2>/dev/null || true' EXIT
sleep 0.5
export MAGPIE_SPOTIFY__API_URL="http://127.0.0.1:$PORT" MAGPIE_SPOTIFY__ACCOUNTS_URL="http://127.0.0.1:$PORT"
export SPOTIFY_CLIENT_ID=bench LOG_LEVEL=warn
"$BIN" --data-dir "$DATA" sql "SELECT 1" >/dev/null 2>&1 || true
for label in "full page (50 new plays)" "empty page"; do
  /usr/bin/time -f "%U %S %e %M" -o "$DATA/poll.time" "$BIN" --data-dir "$DATA" spotify poll --force >"$DATA/poll.out"
  read -r user sys wall rss <"$DATA/poll.time"
  printf '%-26s cpu %.2f s (user %s + sys %s), wall %s s, peak RSS %.1f MB: %s\n' "$label:" \
    "$(echo "$user + $sys" | bc)" "$user" "$sys" "$wall" "$(echo "$rss / 1024" | bc -l)" "$(cat "$DATA/poll.out")"
done
"$BIN" --data-dir "$DATA" serve --bind 127.0.0.1 --port 18778 >/dev/null 2>&1 &
SERVE=$!
sleep 70
printf 'magpie serve idling with polling on, after 70 s: RSS %s MB\n' "$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$SERVE/status)"
kill -INT $SERVE; wait $SERVE || true
