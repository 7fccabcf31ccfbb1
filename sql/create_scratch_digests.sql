-- tsi fix --observations (pipeline.whatif) and pipeline.batch_digests: an empty digest table beside the scratch
-- observations, with the columns of observation_digests (migration 007); insert_observation_digests.sql fills it.
create or replace temp table observation_digests as
select
    snapshot_id, provider, source, observed_at, segment, instrument_kind, instrument, price_type, valid_from,
    valid_to, valid_until, 0::bigint as n_rows, 0::decimal(38, 4) as capacity, 0::decimal(20, 10) as lower_median,
    0::decimal(20, 10) as upper_median, 0::bigint as n_prices, ''::varchar as digest_sha256
from observations
limit 0;
