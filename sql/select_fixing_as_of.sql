-- One index's fixing on one date as it stood: the newest revision computed at or before $as_of (null: the
-- newest of all), or revision $revision when given (tsi explain).
select
    index_id,
    fixing_date,
    revision,
    status,
    coalesce(usd_per_gpu_hour, usd_per_mtok) as value,
    methodology_version,
    definition_sha256,
    n_providers,
    n_observations,
    window_start,
    window_end,
    window_hours,
    carried_from,
    p25_provider_value,
    p75_provider_value,
    min_provider_value,
    max_provider_value,
    mean_value,
    input_hash,
    revision_reason,
    computed_at,
    coalesce(backfill, false) as backfill  -- null before migration 009: live
from fixings
where index_id = $index_id
  and fixing_date = $fixing_date
  and ($revision is null or revision = $revision)
  and ($as_of is null or computed_at <= $as_of)
order by revision desc
limit 1;
