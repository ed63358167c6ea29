-- magpie warehouse, migration 8: supplied MBIDs are checked (issue 26). An MBID a listening
-- source gave (Last.fm, ListenBrainz) was used unchecked, and some are wrong at the source
-- ("Rihanna" with the MBID of an artist named "Rhianna", placed in GB). MusicBrainz enrichment
-- now compares the artist of a supplied MBID with the played name and distrusts a mismatch;
-- every artist looked up by a supplied MBID is queued again so that the check runs on what
-- was fetched before. (No schema change: checks are kept as derived responses,
-- `raw.enrichment_responses` rows with entity 'mbid_check'.)

UPDATE raw.enrichment_queue
SET state = 'queued', attempts = 0, not_before = NULL
WHERE source = 'musicbrainz' AND entity = 'artist'
    AND state IN ('done', 'not_found')
    AND (hints ->> '$.mbid') IS NOT NULL;
