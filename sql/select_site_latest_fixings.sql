-- The landing table of the site (pipeline/site.py): for every index, its latest fixing (the newest revision of
-- its newest fixing date) and the values of the same index 1, 7 and 30 days of fixing date before it (newest
-- revision of those dates; null when that date has no fixing or no value: the change is then left blank).
-- The name and kind come from the definition of the latest fixing's methodology version, so a suppressed
-- fixing (no value in either unit column) still has its unit.
with newest_revision as (
    select
        index_id,
        fixing_date,
        revision,
        status,
        coalesce(usd_per_gpu_hour, usd_per_mtok) as value,
        n_providers,
        n_observations,
        methodology_version,
        computed_at,
        coalesce(backfill, false) as backfill  -- null before migration 009: live
    from fixings
    qualify revision = max(revision) over (partition by index_id, fixing_date)
),
latest as (
    select *
    from newest_revision
    qualify fixing_date = max(fixing_date) over (partition by index_id)
)
select
    l.index_id,
    json_extract_string(d.definition_json, '$.name') as name,
    json_extract_string(d.definition_json, '$.instrument_kind') as instrument_kind,
    l.fixing_date,
    l.revision,
    l.status,
    l.value,
    l.n_providers,
    l.n_observations,
    l.methodology_version,
    l.computed_at,
    l.backfill,
    before_1d.value as value_1d_before,
    before_7d.value as value_7d_before,
    before_30d.value as value_30d_before
from latest as l
left join index_definitions as d
    on d.index_id = l.index_id and d.methodology_version = l.methodology_version
left join newest_revision as before_1d
    on before_1d.index_id = l.index_id and before_1d.fixing_date = l.fixing_date - 1
left join newest_revision as before_7d
    on before_7d.index_id = l.index_id and before_7d.fixing_date = l.fixing_date - 7
left join newest_revision as before_30d
    on before_30d.index_id = l.index_id and before_30d.fixing_date = l.fixing_date - 30
order by l.index_id;
