-- The newest revision of every index's fixing on one date, in a fixed order: the rows of that date's CSV.
-- backfill (migration 009) is the last column: "true" for a fixing computed after the fact from imported
-- records, "false" otherwise (null before 009: those were all live).
select
    index_id, fixing_date, revision, status, usd_per_gpu_hour, usd_per_mtok, n_providers, n_observations,
    p25_provider_value, p75_provider_value, min_provider_value, max_provider_value, methodology_version,
    window_start, window_end, input_hash, case when coalesce(backfill, false) then 'true' else 'false' end
from fixings
where fixing_date = $fixing_date
qualify revision = max(revision) over (partition by index_id)
order by index_id;
