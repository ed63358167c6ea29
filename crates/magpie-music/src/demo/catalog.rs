//! The demo's made-up music: artists from many countries with genres, albums and tracks, all
//! derived from the seed, so the same seed always gives the same catalog.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

/// One made-up artist.
#[derive(Debug, Clone)]
pub struct Artist {
    pub name: String,
    pub spotify_id: String,
    /// ISO 3166-1 alpha-2.
    pub country: &'static str,
    pub genres: Vec<&'static str>,
    pub albums: Vec<Album>,
    /// When, as a fraction of the history (0 = its start), the listener first hears them.
    pub discovered_at: f64,
}

#[derive(Debug, Clone)]
pub struct Album {
    pub name: String,
    pub tracks: Vec<Track>,
}

#[derive(Debug, Clone)]
pub struct Track {
    pub name: String,
    pub spotify_id: String,
    pub duration_ms: i64,
}

/// Countries with weights (a listener's library leans to a few, with a long tail).
const COUNTRIES: &[(&str, u32)] = &[
    ("US", 30),
    ("GB", 18),
    ("SE", 6),
    ("DE", 7),
    ("FR", 5),
    ("CA", 5),
    ("AU", 4),
    ("JP", 4),
    ("KR", 4),
    ("BR", 3),
    ("IS", 2),
    ("NO", 2),
    ("FI", 2),
    ("NL", 2),
    ("IE", 2),
    ("ES", 2),
    ("IT", 2),
    ("MX", 2),
    ("AR", 2),
    ("NG", 2),
    ("ZA", 1),
    ("JM", 1),
    ("NZ", 1),
    ("BE", 1),
    ("DK", 1),
    ("PL", 1),
    ("PT", 1),
    ("CO", 1),
    ("CL", 1),
    ("IN", 1),
    ("GH", 1),
    ("ML", 1),
    ("TR", 1),
    ("EE", 1),
    ("CU", 1),
    ("EG", 1),
    ("PH", 1),
    ("UA", 1),
    ("AT", 1),
    ("CH", 1),
];

const GENRES: &[&[&str]] = &[
    &["indie rock", "alternative rock"],
    &["indie pop", "dream pop"],
    &["synthpop", "electropop"],
    &["techno", "minimal techno"],
    &["house", "deep house"],
    &["hip hop", "conscious hip hop"],
    &["r&b", "neo soul"],
    &["jazz", "modern jazz"],
    &["folk", "indie folk"],
    &["metal", "post-metal"],
    &["punk", "post-punk"],
    &["ambient", "drone"],
    &["classical", "contemporary classical"],
    &["afrobeats", "afropop"],
    &["k-pop"],
    &["latin pop", "reggaeton"],
    &["singer-songwriter"],
    &["shoegaze", "noise pop"],
    &["soul", "funk"],
    &["country", "americana"],
];

const ADJECTIVES: &[&str] = &[
    "Velvet", "Silver", "Hollow", "Northern", "Quiet", "Electric", "Golden", "Paper", "Neon",
    "Wild", "Lunar", "Crimson", "Faded", "Glass", "Midnight", "Static", "Amber", "Distant",
    "Broken", "Tender", "Solar", "Violet", "Hidden", "Restless", "Frozen", "Bright", "Secret",
];
const NOUNS: &[&str] = &[
    "Orchids",
    "Harbours",
    "Wolves",
    "Signals",
    "Rivers",
    "Lanterns",
    "Satellites",
    "Foxes",
    "Mirrors",
    "Gardens",
    "Engines",
    "Echoes",
    "Tides",
    "Cathedrals",
    "Swallows",
    "Machines",
    "Horizons",
    "Ghosts",
    "Parades",
    "Comets",
    "Islands",
    "Shadows",
    "Letters",
    "Fires",
];
const FIRST: &[&str] = &[
    "Mira", "Jonas", "Aiko", "Leon", "Sofia", "Kwame", "Ines", "Theo", "Yuna", "Oskar", "Lena",
    "Mateo", "Nadia", "Elias", "Freya", "Amara", "Ravi", "Clara", "Tomas", "Hana", "Felix",
];
const LAST: &[&str] = &[
    "Kalen",
    "Moreau",
    "Sato",
    "Lindqvist",
    "Okafor",
    "Silva",
    "Novak",
    "Brandt",
    "Reyes",
    "Haddad",
    "Jensen",
    "Costa",
    "Park",
    "Ivanova",
    "Adeyemi",
    "Keller",
    "Laine",
    "Vega",
];
const WORDS: &[&str] = &[
    "Summer", "Heart", "Night", "Drive", "Light", "Rain", "Home", "Fever", "Ocean", "Dream",
    "Youth", "Gold", "Stars", "City", "Run", "Fall", "Waves", "Fire", "Blue", "Silence", "Dance",
    "Lights", "Morning", "Letters", "Winter", "Storm", "Glow", "Sky", "Roses", "Wire", "Salt",
];

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A Spotify-style 22-character base-62 id.
pub fn spotify_id(rng: &mut ChaCha8Rng) -> String {
    (0..22)
        .map(|_| BASE62[rng.random_range(0..62)] as char)
        .collect()
}

fn pick_weighted(rng: &mut ChaCha8Rng) -> &'static str {
    let total: u32 = COUNTRIES.iter().map(|c| c.1).sum();
    let mut roll = rng.random_range(0..total);
    for (code, w) in COUNTRIES {
        if roll < *w {
            return code;
        }
        roll -= w;
    }
    "US"
}

fn pick<'a>(rng: &mut ChaCha8Rng, words: &'a [&'a str]) -> &'a str {
    words.choose(rng).copied().unwrap_or("")
}

fn artist_name(rng: &mut ChaCha8Rng, index: usize) -> String {
    let base = match rng.random_range(0..4) {
        0 => format!("The {} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS)),
        1 => format!("{} {}", pick(rng, FIRST), pick(rng, LAST)),
        2 => format!("{} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS)),
        _ => format!("{} & the {}", pick(rng, FIRST), pick(rng, NOUNS)),
    };
    // Keep names unique without making them look generated.
    if index >= 400 {
        format!("{base} {}", roman(index / 400 + 1))
    } else {
        base
    }
}

fn roman(n: usize) -> &'static str {
    [
        "", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII",
    ][n.min(13)]
}

fn title(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..5) {
        0 => pick(rng, WORDS).to_string(),
        1 => format!("{} {}", pick(rng, ADJECTIVES), pick(rng, WORDS)),
        2 => format!("{} of {}", pick(rng, WORDS), pick(rng, NOUNS)),
        3 => format!("{} {}", pick(rng, WORDS), pick(rng, WORDS)),
        _ => format!("The {} {}", pick(rng, ADJECTIVES), pick(rng, WORDS)),
    }
}

/// Make `count` artists. Artist 0 is the most listened-to.
pub fn generate(rng: &mut ChaCha8Rng, count: usize) -> Vec<Artist> {
    let mut seen = std::collections::HashSet::new();
    (0..count)
        .map(|i| {
            let mut name = artist_name(rng, i);
            while !seen.insert(name.clone()) {
                name = format!("{name} {}", pick(rng, NOUNS));
            }
            let genre_family = GENRES[rng.random_range(0..GENRES.len())];
            let album_count = rng.random_range(1..=6);
            let albums = (0..album_count)
                .map(|_| {
                    let tracks = (0..rng.random_range(4..=13))
                        .map(|_| Track {
                            name: title(rng),
                            spotify_id: spotify_id(rng),
                            duration_ms: rng.random_range(110_000..420_000),
                        })
                        .collect();
                    Album {
                        name: title(rng),
                        tracks,
                    }
                })
                .collect();
            // Favourites are found early; the tail is discovered throughout the history.
            let rank = i as f64 / count.max(1) as f64;
            let discovered_at = (rng.random::<f64>() * rank.sqrt() * 0.95).min(0.97);
            Artist {
                name,
                spotify_id: spotify_id(rng),
                country: pick_weighted(rng),
                genres: genre_family.to_vec(),
                albums,
                discovered_at,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn same_seed_same_catalog() {
        let a = generate(&mut ChaCha8Rng::seed_from_u64(7), 50);
        let b = generate(&mut ChaCha8Rng::seed_from_u64(7), 50);
        assert_eq!(
            a.iter().map(|x| &x.name).collect::<Vec<_>>(),
            b.iter().map(|x| &x.name).collect::<Vec<_>>()
        );
        let names: std::collections::HashSet<_> = a.iter().map(|x| x.name.clone()).collect();
        assert_eq!(names.len(), 50, "artist names are unique");
        assert!(
            a.iter()
                .map(|x| x.country)
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 8
        );
        assert!(a.iter().all(|x| x.spotify_id.len() == 22));
    }
}
