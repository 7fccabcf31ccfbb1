-- Digests of the observations, made once when a snapshot is loaded (sql/insert_observation_digests.sql). A
-- fixing reads them instead of the rows wherever a provider's price comes from one digest (the usual case;
-- sql/select_fixing_digests.sql), and its input hash combines them instead of hashing every row again
-- (README "Methodology", step 9).
--
-- One row per group of a snapshot's observations that a fixing takes or leaves whole: same snapshot,
-- provider, source, fetch time, segment, instrument, price type and validity. digest_sha256 is the sha256 of
-- the text: the line snapshot_id|provider|instrument_kind|instrument|price_type|valid_from|valid_to (dates
-- YYYY-MM-DD, empty when open), a line feed, then the group's rows as lines row_key|region|gpu_count|price
-- (the GPU count as DECIMAL(12, 4) text, the price as DECIMAL(20, 10) text), sorted in byte order and joined
-- by line feeds. The statistics are exact: the lower and upper middle prices (equal on an odd count), the
-- listed GPUs (a row without a GPU count weighs 1), the number of distinct prices.
-- Deleted and made again with the snapshot's observations when it is reloaded.
create table observation_digests (
    snapshot_id      varchar not null,
    provider         varchar not null,
    source           varchar,
    observed_at      timestamp not null,
    segment          varchar,
    instrument_kind  varchar not null,
    instrument       varchar not null,
    price_type       varchar not null,
    valid_from       date,
    valid_to         date,
    n_rows           bigint not null,
    capacity         decimal(38, 4) not null,
    lower_median     decimal(20, 10) not null,
    upper_median     decimal(20, 10) not null,
    n_prices         bigint not null,
    digest_sha256    varchar not null
);
