-- The fixings for people, as they were known at $as_of: for each index and date, the newest revision computed
-- at or before that moment (history is append-only, so this never changes once $as_of has passed); the
-- newest revision of all when $as_of is null. One date, or every date when $fixing_date is null.
select
    fixing_date,
    index_id,
    revision,
    status,
    coalesce(usd_per_gpu_hour, usd_per_mtok) as value,
    case when usd_per_gpu_hour is not null then 'USD/GPU-hour'
         when usd_per_mtok is not null then 'USD/Mtok' end as unit,
    n_providers,
    n_observations
from fixings
where ($as_of is null or computed_at <= $as_of)
  and ($fixing_date is null or fixing_date = $fixing_date)
qualify revision = max(revision) over (partition by index_id, fixing_date)
order by fixing_date, index_id;
