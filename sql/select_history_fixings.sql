-- One index family's cumulative history (published/v1/history/fixings_<kind>.csv and .parquet, written by
-- pipeline/history.py): the newest revision of every fixing of every published date (a date with a row in
-- publications) whose index is of instrument kind $instrument_kind, oldest date first. The columns are the
-- daily CSV's (pipeline.publish.HEADER), both value columns included: pipeline/history.py drops the other
-- family's. backfill is null on fixings from before migration 009, which were all live.
with kinds as (
    select index_id, methodology_version, json_extract_string(definition_json, '$.instrument_kind') as instrument_kind
    from index_definitions
),
newest as (
    select *
    from fixings
    where fixing_date in (select fixing_date from publications)
    qualify revision = max(revision) over (partition by index_id, fixing_date)
)
select
    n.fixing_date,
    n.index_id,
    n.revision,
    n.status,
    n.usd_per_gpu_hour,
    n.usd_per_mtok,
    n.n_providers,
    n.n_observations,
    n.p25_provider_value,
    n.p75_provider_value,
    n.min_provider_value,
    n.max_provider_value,
    n.methodology_version,
    n.window_start as window_start_utc,
    n.window_end as window_end_utc,
    n.input_hash,
    coalesce(n.backfill, false) as backfill
from newest as n
join kinds as k using (index_id, methodology_version)
where k.instrument_kind = $instrument_kind
order by n.fixing_date, n.index_id;
