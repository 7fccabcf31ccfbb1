-- What the fixings a settlement reads rest on (pipeline.influence.settlement_influence): every constituent of
-- each date's revision (settlement_revisions: fixing_date, revision; registered from
-- sql/select_settlement_fixings.sql), its methodology version, and its leave-one-out row if one is stored
-- (has_row false: the fixing predates migration 012, computed again from the constituents).
select
    c.fixing_date,
    f.methodology_version,
    c.provider,
    c.provider_value,
    c.included,
    c.exclusion_reason,
    i.provider is not null as has_row,
    i.stands,
    coalesce(i.usd_per_gpu_hour_without, i.usd_per_mtok_without) as value_without,
    i.listed_gpus,
    i.reason
from fixing_constituents as c
join settlement_revisions as r on r.fixing_date = c.fixing_date and r.revision = c.revision
join fixings as f on f.index_id = c.index_id and f.fixing_date = c.fixing_date and f.revision = c.revision
left join fixing_influence as i
    on i.index_id = c.index_id and i.fixing_date = c.fixing_date and i.revision = c.revision
   and i.provider = c.provider
where c.index_id = $index_id
order by c.fixing_date, c.provider;
