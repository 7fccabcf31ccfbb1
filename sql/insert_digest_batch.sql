-- digest_batch: one snapshot's digests, computed from its parsed batch before its load
-- (pipeline.batch_digests, by insert_observation_digests.sql), registered by the loader as an Arrow table.
insert into observation_digests (
    snapshot_id, provider, source, observed_at, segment, instrument_kind, instrument, price_type, valid_from,
    valid_to, valid_until, n_rows, capacity, lower_median, upper_median, n_prices, digest_sha256
)
select
    snapshot_id, provider, source, observed_at, segment, instrument_kind, instrument, price_type, valid_from,
    valid_to, valid_until, n_rows, capacity, lower_median, upper_median, n_prices, digest_sha256
from digest_batch;
