#!/usr/bin/env bash
# Regenerates crates/magpie-web/assets/world-110m.json, the country shapes of the dashboards'
# world map, so the map works offline (the file is embedded in the binary).
#
# Source: the npm package `world-atlas` (https://github.com/topojson/world-atlas), Natural Earth's
# 1:110m Admin 0 countries (public domain) as TopoJSON keyed by ISO 3166-1 numeric code; the
# numeric codes are mapped to alpha-2 with `world-countries` (ODbL 1.0), the package the
# countries seed comes from. The arcs are decoded and projected (equirectangular, 1000 x 440,
# Antarctica dropped) into SVG path strings here; run once by hand and commit the output.
set -euo pipefail
ATLAS="${1:-2.0.2}"
COUNTRIES="${2:-5.1.0}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack "world-atlas@$ATLAS" "world-countries@$COUNTRIES" >/dev/null 2>&1 \
  && mkdir atlas countries \
  && tar xzf "world-atlas-$ATLAS.tgz" -C atlas && tar xzf "world-countries-$COUNTRIES.tgz" -C countries)
python3 - "$WORK/atlas/package/countries-110m.json" "$WORK/countries/package/countries.json" \
  "$(dirname "$0")/../crates/magpie-web/assets/world-110m.json" <<'PY'
import json, sys

topo = json.load(open(sys.argv[1], encoding="utf-8"))
numeric_to_iso2 = {c["ccn3"]: c["cca2"] for c in json.load(open(sys.argv[2], encoding="utf-8")) if c.get("ccn3")}
scale, translate = topo["transform"]["scale"], topo["transform"]["translate"]

def decode(arc):
    x = y = 0
    points = []
    for dx, dy in arc:
        x += dx
        y += dy
        points.append((x * scale[0] + translate[0], y * scale[1] + translate[1]))
    return points

arcs = [decode(a) for a in topo["arcs"]]
WIDTH, TOP, BOTTOM = 1000.0, 84.0, -60.0
HEIGHT = WIDTH / 360.0 * (TOP - BOTTOM)

def project(lon, lat):
    return ((lon + 180.0) / 360.0 * WIDTH, (TOP - lat) / (TOP - BOTTOM) * HEIGHT)

def ring(indexes):
    points = []
    for i in indexes:
        seq = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
        points.extend(seq if not points else seq[1:])
    out, last = [], None
    for lon, lat in points:
        x, y = project(lon, lat)
        p = (round(x, 1), round(y, 1))
        if p != last:
            out.append(p)
            last = p
    if len(out) < 3:
        return ""
    # Rings of Russia and Fiji cross the antimeridian: start a new subpath at the jump instead
    # of drawing a line across the whole map.
    d = ""
    for i, (x, y) in enumerate(out):
        jump = i > 0 and abs(x - out[i - 1][0]) > WIDTH / 2
        d += ("M" if i == 0 or jump else "L") + f"{x:g},{y:g}"
    return d + "Z"

shapes = []
for geom in topo["objects"]["countries"]["geometries"]:
    iso2 = numeric_to_iso2.get(geom.get("id"))
    name = geom.get("properties", {}).get("name", "")
    if name == "Antarctica" or iso2 is None:
        continue
    polygons = geom["arcs"] if geom["type"] == "MultiPolygon" else [geom["arcs"]]
    d = "".join(ring(r) for polygon in polygons for r in polygon)
    if d:
        shapes.append({"iso2": iso2, "name": name, "d": d})
shapes.sort(key=lambda s: s["iso2"])
with open(sys.argv[3], "w", encoding="utf-8") as f:
    json.dump({"width": WIDTH, "height": round(HEIGHT, 1),
               "source": "Natural Earth 1:110m via world-atlas (public domain)",
               "countries": shapes}, f, separators=(",", ":"))
print(f"{len(shapes)} countries")
PY
echo "wrote crates/magpie-web/assets/world-110m.json"
