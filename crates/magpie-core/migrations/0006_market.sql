-- magpie warehouse, migration 6: the Deribit collector's instruments, lifecycle events and
-- disconnect intervals. (Ticks themselves are Parquet files under DATA_DIR/market, read
-- through the market.* views.)

CREATE SCHEMA IF NOT EXISTS market;

-- Every instrument public/get_instruments (or instrument.creation) ever named, with all of
-- its fields (`record`, as Deribit sent it) and whether it is trading now.
CREATE TABLE market.instrument_metadata (
    instrument_name     VARCHAR PRIMARY KEY,
    instrument_id       BIGINT,
    currency            VARCHAR NOT NULL,    -- the currency it was listed under (BTC, ETH)
    kind                VARCHAR NOT NULL,    -- option | future
    settlement_period   VARCHAR,             -- day | week | month | perpetual ...
    option_type         VARCHAR,             -- call | put
    strike              DOUBLE,
    base_currency       VARCHAR,
    quote_currency      VARCHAR,
    settlement_currency VARCHAR,
    tick_size           DOUBLE,
    contract_size       DOUBLE,
    min_trade_amount    DOUBLE,
    creation_time       TIMESTAMP,           -- UTC
    expiration_time     TIMESTAMP,           -- UTC; perpetuals: year 3000
    state               VARCHAR,             -- the latest instrument.state seen
    is_active           BOOLEAN NOT NULL,
    first_seen          TIMESTAMP NOT NULL,
    last_seen           TIMESTAMP NOT NULL,
    record              JSON NOT NULL
);

CREATE SEQUENCE market.lifecycle_event_seq START 1;

CREATE TABLE market.lifecycle_events (
    event_id        BIGINT PRIMARY KEY DEFAULT nextval('market.lifecycle_event_seq'),
    event_time      TIMESTAMP NOT NULL,      -- UTC
    event_type      VARCHAR NOT NULL,        -- instrument_listed instrument_expired subscription_added subscription_removed subscription_rejected reconcile
    currency        VARCHAR,
    instrument_name VARCHAR,
    success         BOOLEAN NOT NULL,
    error           VARCHAR,
    detail          VARCHAR
);

-- Quotes and tickers cannot be backfilled: every interval a connection (or the whole
-- collector) was not receiving is kept. reconnected_at is NULL while it lasts.
CREATE TABLE market.disconnects (
    connection      INTEGER NOT NULL,        -- 0 = lifecycle, 1.. = data, -1 = the collector
    disconnected_at TIMESTAMP NOT NULL,
    reconnected_at  TIMESTAMP,
    reason          VARCHAR NOT NULL
);
