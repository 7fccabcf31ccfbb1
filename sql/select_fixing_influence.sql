-- The leave-one-out rows of one revision of a fixing (tsi explain), in the order of its constituents
-- (sql/select_fixing_constituents.sql): included ones first, by value.
select
    i.provider,
    c.provider_value,
    i.had_vote,
    i.stands,
    coalesce(i.usd_per_gpu_hour_without, i.usd_per_mtok_without) as value_without,
    coalesce(i.move_usd_per_gpu_hour, i.move_usd_per_mtok) as move,
    i.move_pct,
    i.n_providers_without,
    i.screened_without,
    i.listed_gpus,
    i.largest,
    i.reason
from fixing_influence as i
left join fixing_constituents as c using (index_id, fixing_date, revision, provider)
where i.index_id = $index_id and i.fixing_date = $fixing_date and i.revision = $revision
order by c.included desc nulls last, c.provider_value nulls last, i.provider;
