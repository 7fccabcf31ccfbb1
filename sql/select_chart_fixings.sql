-- The fixings a chart plots: for each index of $index_ids and each date from $first to $last (either null:
-- unbounded), the newest revision, as sql/select_fixings_as_of.sql publishes it. The value and the
-- dispersion band are in the index's unit (usd_per_gpu_hour or usd_per_mtok, whichever the index fixes); a
-- suppressed day has no value and is still returned, to be marked.
select
    index_id,
    fixing_date,
    revision,
    status,
    coalesce(usd_per_gpu_hour, usd_per_mtok) as value,
    p25_provider_value,
    p75_provider_value
from fixings
where list_contains($index_ids, index_id)
  and ($first is null or fixing_date >= $first)
  and ($last is null or fixing_date <= $last)
qualify revision = max(revision) over (partition by index_id, fixing_date)
order by index_id, fixing_date;
