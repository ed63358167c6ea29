//! The demo's enrichment: what MusicBrainz would say of the made-up artists (type, country,
//! genres with votes), written in MusicBrainz's response format into
//! `raw.enrichment_responses` with each artist's country, and marked done in the queue, so the
//! demo's genre and world-map pages have data without a network. Every row says
//! `request = 'demo'`: nothing here was fetched.

use duckdb::{Connection, params};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{GenerateOptions, artist_count, catalog};
use crate::identity::normalise;

/// A stable made-up MBID for a name.
fn fake_mbid(name: &str) -> String {
    let h = hex::encode(Sha256::digest(name.as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Write the demo artists' enrichment (the catalog `options` generates); returns the artists.
pub fn write(conn: &Connection, options: &GenerateOptions) -> duckdb::Result<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let artists = catalog::generate(&mut rng, artist_count(options.plays));
    magpie_core::warehouse::in_transaction(conn, || {
        let mut response = conn.prepare(
            "INSERT OR REPLACE INTO raw.enrichment_responses VALUES (?, 'artist', ?, 'demo', ?, current_timestamp::TIMESTAMP, ?)",
        )?;
        let mut queued = conn.prepare(
            "INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, state, attempts, queued_at, finished_at)
             VALUES (?, 'artist', ?, ?, 'done', 1, current_timestamp::TIMESTAMP, current_timestamp::TIMESTAMP)
             ON CONFLICT DO NOTHING",
        )?;
        for (i, artist) in artists.iter().enumerate() {
            let key = normalise(&artist.name);
            let mbid = fake_mbid(&artist.name);
            let genres: Vec<_> = artist
                .genres
                .iter()
                .enumerate()
                .map(|(g, name)| json!({"name": name, "count": 3 - g.min(2) as i64}))
                .collect();
            let body = json!({
                "id": mbid,
                "name": artist.name,
                "sort-name": artist.name,
                "type": if i % 3 == 0 { "Person" } else { "Group" },
                "country": artist.country,
                "area": {"name": artist.country, "iso-3166-1-codes": [artist.country]},
                "life-span": {"begin": format!("{}", 1960 + (i * 7) % 60), "ended": false},
                "genres": genres,
                "tags": [],
            });
            response.execute(params!["musicbrainz", key, 200, body.to_string()])?;
            let geo = json!({"country_code": artist.country, "via": []});
            response.execute(params!["geo", key, 0, geo.to_string()])?;
            queued.execute(params!["musicbrainz", key, artist.name])?;
            queued.execute(params!["geo", key, artist.name])?;
        }
        Ok(artists.len())
    })
}
