-- The newest revision of every fixing dated $first_date to $last_date, with the definition it was made
-- under: what tsi verify recomputes from the raw store and compares, field by field.
select
    f.index_id,
    f.fixing_date,
    f.revision,
    f.status,
    coalesce(f.usd_per_gpu_hour, f.usd_per_mtok) as value,
    f.methodology_version,
    f.n_providers,
    f.n_observations,
    f.window_start,
    f.window_end,
    f.window_hours,
    f.carried_from,
    f.p25_provider_value,
    f.p75_provider_value,
    f.min_provider_value,
    f.max_provider_value,
    f.mean_value,
    f.input_hash,
    f.loaded_through,
    coalesce(f.backfill, false) as backfill,  -- null on fixings from before migration 009: none was
    d.definition_json
from fixings as f
join index_definitions as d using (index_id, methodology_version)
where f.fixing_date between $first_date and $last_date
qualify f.revision = max(f.revision) over (partition by f.index_id, f.fixing_date)
order by f.fixing_date, f.index_id;
