-- The instrument kinds of the fixings of published dates, with how many fixings each (null: a fixing whose
-- definition is missing): pipeline/history.py refuses to write a history that would leave any of them out.
select json_extract_string(d.definition_json, '$.instrument_kind') as instrument_kind, count(*) as n_fixings
from fixings as f
left join index_definitions as d using (index_id, methodology_version)
where f.fixing_date in (select fixing_date from publications)
group by all
order by all;
