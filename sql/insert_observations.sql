-- observation_batch: an Arrow table registered by the loader, one row per Observation, typed explicitly.
insert into observations (
    snapshot_id, row_key, source, provider, instrument_kind, instrument, source_instrument, price_type,
    region, gpu_count, original_price, original_currency, original_unit, usd_per_gpu_hour, usd_per_mtok,
    observed_at, attributes, segment, valid_from, valid_to, fx_usd_per_unit, fx_rate_date, valid_until
)
select
    snapshot_id, row_key, source, provider, instrument_kind, instrument, source_instrument, price_type,
    region, gpu_count, original_price, original_currency, original_unit,
    case when instrument_kind = 'gpu' then usd_price end,
    case when instrument_kind = 'token' then usd_price end,
    observed_at, attributes, segment, valid_from, valid_to, fx_usd_per_unit, fx_rate_date, valid_until
from observation_batch;
