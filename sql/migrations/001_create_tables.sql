-- Token Spot Index warehouse, schema version 1.
-- Every TIMESTAMP column holds UTC. Every price is DECIMAL with its unit in the column name.

create table raw_snapshots (
    snapshot_id   varchar primary key,  -- sha256 of source|url|fetched_at|body sha256: one fetch
    sha256        varchar not null,     -- of the uncompressed body; the raw store's address
    source        varchar not null,
    url           varchar not null,
    provider      varchar,              -- for bodies that do not name their provider (one cloud's catalog)
    fetched_at    timestamp not null,
    http_status   integer not null,
    content_type  varchar,
    byte_size     bigint not null,
    storage_path  varchar not null      -- relative to the warehouse folder
);

-- Every fetch attempt, failed ones included: a failed source is reported, not skipped. A replayed attempt
-- (same source, URL and time, as in the demo) is recorded once.
create table fetch_log (
    source        varchar not null,
    url           varchar not null,
    attempted_at  timestamp not null,
    outcome       varchar not null check (outcome in ('stored', 'failed')),
    http_status   integer,
    error         varchar,
    snapshot_id   varchar,
    primary key (source, url, attempted_at)
);

-- One row per parse of a snapshot: what it gave, or why it failed as a whole.
create table snapshot_parses (
    snapshot_id     varchar not null,
    parsed_at       timestamp not null,
    outcome         varchar not null check (outcome in ('loaded', 'failed')),
    n_observations  integer not null,
    n_rejections    integer not null,
    error           varchar
);

create table observations (
    snapshot_id        varchar not null,
    row_key            varchar not null,  -- unique within a snapshot
    source             varchar not null,
    provider           varchar not null,
    instrument_kind    varchar not null check (instrument_kind in ('gpu', 'token')),
    instrument         varchar not null,  -- canonical id: H100-SXM, llama-3.3-70b
    source_instrument  varchar not null,  -- as the source wrote it
    price_type         varchar not null,  -- on_demand, spot, input, output, cached_input
    region             varchar,
    gpu_count          decimal(12, 4),
    original_price     decimal(38, 18) not null,
    original_currency  varchar not null,
    original_unit      varchar not null,  -- instance_hour, token, ...
    usd_per_gpu_hour   decimal(20, 10),   -- set for gpu rows only
    usd_per_mtok       decimal(20, 10),   -- USD per million tokens; set for token rows only
    observed_at        timestamp not null,
    attributes         varchar,           -- JSON text: instance type, quantization, ...
    check ((instrument_kind = 'gpu') = (usd_per_gpu_hour is not null)),
    check ((instrument_kind = 'token') = (usd_per_mtok is not null))
);

create table rejections (
    snapshot_id  varchar not null,
    source       varchar not null,
    row_key      varchar not null,
    reason       varchar not null,  -- a code: unknown_instrument, free_listing, outside_sanity_band, ...
    detail       varchar not null,
    raw_excerpt  varchar not null,
    observed_at  timestamp not null
);

create table fx_rates (
    rate_date     date not null,
    currency      varchar not null,
    usd_per_unit  decimal(20, 10) not null,
    snapshot_id   varchar not null,
    primary key (rate_date, currency, snapshot_id)
);

create table index_definitions (
    index_id             varchar not null,
    methodology_version  varchar not null,
    definition_json      varchar not null,  -- the full definition, canonical JSON
    definition_sha256    varchar not null,
    first_seen_at        timestamp not null,
    primary key (index_id, methodology_version)
);

-- Append-only: a correction is a new revision, never an UPDATE.
create table fixings (
    index_id             varchar not null,
    fixing_date          date not null,
    revision             integer not null,
    status               varchar not null check (status in ('final', 'provisional', 'widened', 'carried', 'suppressed')),
    usd_per_gpu_hour     decimal(20, 4),  -- the fixing, for GPU indices
    usd_per_mtok         decimal(20, 4),  -- the fixing, for token indices
    methodology_version  varchar not null,
    definition_sha256    varchar not null,
    n_providers          integer not null,
    n_observations       integer not null,
    window_start         timestamp not null,  -- exclusive
    window_end           timestamp not null,  -- inclusive: the fixing time
    p25_provider_value   decimal(20, 4),      -- dispersion of provider values, in the fixing's unit
    p75_provider_value   decimal(20, 4),
    min_provider_value   decimal(20, 4),
    max_provider_value   decimal(20, 4),
    input_hash           varchar not null,   -- sha256 over the sorted constituent observations
    revision_reason      varchar,
    computed_at          timestamp not null,
    primary key (index_id, fixing_date, revision)
);

create table fixing_constituents (
    index_id          varchar not null,
    fixing_date       date not null,
    revision          integer not null,
    provider          varchar not null,
    snapshot_id       varchar not null,
    provider_value    decimal(24, 11) not null,  -- in the fixing's unit; exact half-sum of two prices
    n_observations    integer not null,
    included          boolean not null,
    exclusion_reason  varchar,
    weight            decimal(12, 10) not null,
    primary key (index_id, fixing_date, revision, provider)
);

create table publications (
    path          varchar primary key,  -- relative to the warehouse folder
    sha256        varchar not null,
    fixing_date   date not null,
    byte_size     bigint not null,
    published_at  timestamp not null
);

create table runs (
    run_id       varchar not null,
    flow         varchar not null,
    started_at   timestamp not null,
    finished_at  timestamp,
    outcome      varchar,
    detail       varchar
);
