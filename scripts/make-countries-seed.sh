#!/usr/bin/env bash
# Regenerates models/seeds/countries.csv from the npm package `world-countries`
# (https://github.com/mledoze/countries, data under the ODbL 1.0): ISO 3166-1 alpha-2 and
# alpha-3 codes, common English name, region, subregion and a representative point (lat/lon).
# Run once by hand; the CSV is committed, and nothing is fetched at run time.
set -euo pipefail
VERSION="${1:-5.1.0}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack "world-countries@$VERSION" >/dev/null 2>&1 && tar xzf "world-countries-$VERSION.tgz")
python3 - "$WORK/package/countries.json" "$(dirname "$0")/../models/seeds/countries.csv" <<'PY'
import csv, json, sys
rows = json.load(open(sys.argv[1], encoding="utf-8"))
rows.sort(key=lambda c: c["cca2"])
with open(sys.argv[2], "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["iso2", "iso3", "country_name", "region", "subregion", "latitude", "longitude"])
    for c in rows:
        lat, lon = (c.get("latlng") or [None, None])[:2]
        w.writerow([c["cca2"], c["cca3"], c["name"]["common"], c.get("region") or "",
                    c.get("subregion") or "", lat, lon])
PY
echo "wrote models/seeds/countries.csv"
