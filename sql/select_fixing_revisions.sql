-- Every revision of one index's fixing on one date, oldest first: its append-only history.
select
    revision,
    status,
    coalesce(usd_per_gpu_hour, usd_per_mtok) as value,
    computed_at,
    methodology_version,
    revision_reason
from fixings
where index_id = $index_id and fixing_date = $fixing_date
order by revision;
