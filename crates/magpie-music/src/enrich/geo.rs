//! Where an artist comes from: the country of MusicBrainz's `country` field, or of the
//! artist's area (or begin area), walking "part of" relations up to an area with an ISO
//! 3166-1 code (a city, its state, its country). MusicBrainz areas have no coordinates: the
//! models take each country's region and centroid from the countries seed.
//!
//! The answer is kept as a derived response (`source = 'geo'`, status 0):
//! `{"country_code": "US", "via": ["Aberdeen", "Washington", "United States"]}`.

use serde_json::{Value, json};

use super::musicbrainz::{MusicBrainz, Stop};
use super::queue::{Item, Outcome, Queue, Response};
use super::{Looked, Source};

/// Areas walked at most (city → district → state → country is four).
const MAX_DEPTH: usize = 6;

/// Locate one artist MusicBrainz has looked up.
pub async fn locate(mb: &mut MusicBrainz, queue: &Queue<'_>, item: &Item) -> Looked {
    let artist = match queue.cached(Source::MusicBrainz, "artist", &item.key) {
        Ok(Some((200, body))) => body,
        Ok(_) => {
            return Looked::Finished(
                Outcome::NotFound("MusicBrainz has not found this artist".into()),
                vec![],
            );
        }
        Err(e) => return Looked::Finished(Outcome::Failed(e.to_string()), vec![]),
    };
    let mut kept = Vec::new();
    let found = match artist["country"].as_str().filter(|c| c.len() == 2) {
        Some(code) => Ok(Some((code.to_string(), vec![]))),
        None => walk(mb, queue, &mut kept, &artist).await,
    };
    match found {
        Ok(Some((code, via))) => {
            kept.push(Response {
                source: Source::Geo,
                entity: "artist".into(),
                key: item.key.clone(),
                request: "derived".into(),
                status: 0,
                body: json!({ "country_code": code, "via": via }),
            });
            Looked::Finished(Outcome::Done, kept)
        }
        Ok(None) => Looked::Finished(
            Outcome::NotFound("no country in the artist's areas".into()),
            kept,
        ),
        Err(Stop::Busy(wait)) => Looked::Wait(wait, "MusicBrainz is busy (HTTP 503)".into(), kept),
        Err(Stop::Failed(why)) => Looked::Finished(Outcome::Failed(why), kept),
    }
}

/// The first ISO code of an area, if it is a country (or has one).
fn iso_code(area: &Value) -> Option<String> {
    area["iso-3166-1-codes"][0]
        .as_str()
        .filter(|c| c.len() == 2)
        .map(str::to_string)
}

/// The area this one is part of.
fn parent(area: &Value) -> Option<String> {
    area["relations"].as_array()?.iter().find_map(|r| {
        let part_of = r["type"] == "part of" && r["direction"] == "backward";
        part_of
            .then(|| r["area"]["id"].as_str().map(str::to_string))
            .flatten()
    })
}

async fn walk(
    mb: &mut MusicBrainz,
    queue: &Queue<'_>,
    kept: &mut Vec<Response>,
    artist: &Value,
) -> Result<Option<(String, Vec<String>)>, Stop> {
    for start in [&artist["area"], &artist["begin-area"]] {
        let mut via = Vec::new();
        if let Some(name) = start["name"].as_str() {
            via.push(name.to_string());
        }
        if let Some(code) = iso_code(start) {
            return Ok(Some((code, via)));
        }
        let mut next = start["id"].as_str().map(str::to_string);
        for _ in 0..MAX_DEPTH {
            let Some(id) = next else { break };
            let area = mb.area(queue, kept, &id).await?;
            if let Some(name) = area["name"].as_str()
                && via.last().map(String::as_str) != Some(name)
            {
                via.push(name.to_string());
            }
            if let Some(code) = iso_code(&area) {
                return Ok(Some((code, via)));
            }
            next = parent(&area);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_codes_and_parents() {
        let us = json!({"name": "United States", "iso-3166-1-codes": ["US"]});
        assert_eq!(iso_code(&us).as_deref(), Some("US"));
        let city = json!({"name": "Aberdeen", "relations": [
            {"type": "part of", "direction": "forward", "area": {"id": "child"}},
            {"type": "part of", "direction": "backward", "area": {"id": "washington"}}
        ]});
        assert_eq!(iso_code(&city), None);
        assert_eq!(parent(&city).as_deref(), Some("washington"));
    }
}
