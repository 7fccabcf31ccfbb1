-- The revisions log (published/v1/history/revisions.csv and .parquet, written by pipeline/history.py): every
-- revision ever computed of every fixing of a published date, the one it replaced beside it (null on
-- revision 1), and why (fixings.revision_reason, null on revision 1). computed_at is cut to the second, the
-- precision of the CSV's timestamps, so that the CSV and the Parquet hold the same values.
with kinds as (
    select index_id, methodology_version, json_extract_string(definition_json, '$.instrument_kind') as instrument_kind
    from index_definitions
)
select
    f.fixing_date,
    f.index_id,
    k.instrument_kind,
    f.revision,
    f.status,
    f.usd_per_gpu_hour,
    f.usd_per_mtok,
    lag(f.status) over revisions as previous_status,
    lag(f.usd_per_gpu_hour) over revisions as previous_usd_per_gpu_hour,
    lag(f.usd_per_mtok) over revisions as previous_usd_per_mtok,
    f.methodology_version,
    f.input_hash,
    date_trunc('second', f.computed_at) as computed_at_utc,
    f.revision_reason,
    coalesce(f.backfill, false) as backfill
from fixings as f
left join kinds as k using (index_id, methodology_version)
where f.fixing_date in (select fixing_date from publications)
window revisions as (partition by f.index_id, f.fixing_date order by f.revision)
order by f.fixing_date, f.index_id, f.revision;
