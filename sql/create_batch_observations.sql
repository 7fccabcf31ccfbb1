-- pipeline.batch_digests: one parsed snapshot's batch (observation_batch, an Arrow table registered by the
-- digester, typed as the loader inserts it) seen as the rows of observations that insert_observations.sql
-- makes of it: the same names, types and price columns, so that insert_observation_digests.sql gives here,
-- byte for byte, the digests it would give over the warehouse's table after the load.
create or replace temp view observations as
select
    snapshot_id, row_key, source, provider, instrument_kind, instrument, source_instrument, price_type,
    region, gpu_count, original_price, original_currency, original_unit,
    case when instrument_kind = 'gpu' then usd_price end as usd_per_gpu_hour,
    case when instrument_kind = 'token' then usd_price end as usd_per_mtok,
    observed_at, attributes, segment, valid_from, valid_to, fx_usd_per_unit, fx_rate_date, valid_until
from observation_batch;
