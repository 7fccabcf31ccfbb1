-- Append fixings (a first revision or a correction): fixing_batch is registered by pipeline.fixing.
-- Nothing ever updates or deletes a fixing.
insert into fixings (
    index_id, fixing_date, revision, status, usd_per_gpu_hour, usd_per_mtok, methodology_version,
    definition_sha256, n_providers, n_observations, window_start, window_end, p25_provider_value,
    p75_provider_value, min_provider_value, max_provider_value, input_hash, revision_reason, computed_at,
    window_hours, carried_from, mean_value, loaded_through, backfill
)
select
    index_id, fixing_date, revision, status, usd_per_gpu_hour, usd_per_mtok, methodology_version,
    definition_sha256, n_providers, n_observations, window_start, window_end, p25, p75, min, max,
    input_hash, revision_reason, computed_at, window_hours, carried_from, mean, loaded_through, backfill
from fixing_batch;
